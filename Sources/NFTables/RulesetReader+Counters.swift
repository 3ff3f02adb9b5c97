#if canImport(Glibc)
import Glibc
#endif
import CNftnl
import CMnl
import Netlink

extension RulesetReader {
    /// The counter of one element, asked for alone (`NFT_MSG_GETSETELEM` without `NLM_F_DUMP`:
    /// the kernel looks the key up and answers with that element only, whatever the size of
    /// the set). Nil when the element is absent or carries no counter.
    func readCounter(_ address: ElementAddress) throws -> Counter? {
        var counter: Counter?
        do {
            try socket.request(context: "reading the counter of \(address.key) in \(address.table) \(address.set)", build: { buffer, sequence in
                let header = nftnl_nlmsg_build_hdr(buffer.assumingMemoryBound(to: CChar.self), messageType(NFT_MSG_GETSETELEM),
                                                   address.table.family.protocolFamily, UInt16(NLM_F_ACK), sequence)!
                mnl_attr_put_strz(header, attribute(NFTA_SET_ELEM_LIST_TABLE), address.table.name)
                mnl_attr_put_strz(header, attribute(NFTA_SET_ELEM_LIST_SET), address.set)
                let list = mnl_attr_nest_start(header, attribute(NFTA_SET_ELEM_LIST_ELEMENTS))
                let item = mnl_attr_nest_start(header, attribute(NFTA_LIST_ELEM))
                let key = mnl_attr_nest_start(header, attribute(NFTA_SET_ELEM_KEY))
                // A key is at most 4 parts of 16 bytes: 72 bytes of scratch (see ElementCoding.write).
                withUnsafeTemporaryAllocation(byteCount: 72, alignment: 8) { scratch in
                    let length = ElementCoding.write(address.key, to: scratch.baseAddress!)
                    mnl_attr_put(header, attribute(NFTA_DATA_VALUE), length, scratch.baseAddress)
                }
                mnl_attr_nest_end(header, key)
                mnl_attr_nest_end(header, item)
                mnl_attr_nest_end(header, list)
                return Int(header.pointee.nlmsg_len)
            }, onMessage: { message in
                for attribute in message.nfnetlinkAttributes where attribute.type == UInt16(NFTA_SET_ELEM_LIST_ELEMENTS.rawValue) {
                    NetlinkMessage.forEachAttribute(in: attribute.payload) { _, element in
                        NetlinkMessage.forEachAttribute(in: element) { type, payload in
                            Self.takeCounter(type: type, payload: payload, into: &counter)
                        }
                    }
                }
            })
        } catch let error as NetlinkError where error.errno == ENOENT {
            return nil
        }
        return counter
    }
}

extension RulesetReader {
    /// Packets and bytes per element comment (the agent's comments name services), summed over
    /// every counted set of `tables`. Elements are folded into the totals as the dump arrives:
    /// no table, element or per-element string is kept, so a metrics scrape at 100k services
    /// costs a few dictionary entries per service instead of a second copy of the ruleset.
    func countersByComment(_ tables: [TableID]) throws -> [String: Counter] {
        var totals: [String: Counter] = [:]
        for id in tables {
            var table = Table(id: id)
            do {
                try readSets(into: &table)
            } catch let error as NetlinkError where error.errno == ENOENT {
                continue
            }
            for (name, set) in table.sets where set.counter {
                try dump(messageType(NFT_MSG_GETSETELEM), id, set: name, context: "reading the counters of \(id) \(name)") { message in
                    for attribute in message.nfnetlinkAttributes where attribute.type == UInt16(NFTA_SET_ELEM_LIST_ELEMENTS.rawValue) {
                        NetlinkMessage.forEachAttribute(in: attribute.payload) { _, element in
                            var comment: String?
                            var counter: Counter?
                            NetlinkMessage.forEachAttribute(in: element) { type, payload in
                                switch type {
                                case UInt16(NFTA_SET_ELEM_USERDATA.rawValue):
                                    comment = NFTables.comment(fromUserData: payload)
                                default:
                                    Self.takeCounter(type: type, payload: payload, into: &counter)
                                }
                            }
                            guard let comment, let counter else { return }
                            totals[comment, default: Counter(packets: 0, bytes: 0)].add(counter)
                        }
                    }
                }
            }
        }
        return totals
    }
}

extension Counter {
    /// Adds another counter's packets and bytes.
    public mutating func add(_ other: Counter) {
        packets &+= other.packets
        bytes &+= other.bytes
    }
}
