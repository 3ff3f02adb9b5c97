#if canImport(Glibc)
import Glibc
#endif
import CNftnl
import CMnl
import Netlink

/// What the kernel holds for some tables, with per-element counters, at one generation.
public struct KernelSnapshot: Sendable {
    public var ruleset: Ruleset
    /// Counters per table, set and element key (only for sets with `counter`).
    public var counters: [TableID: [String: [ValueList: Counter]]]
    /// The ruleset generation the snapshot was read at.
    public var generation: UInt32
}

/// Loads the agent's own tables back from the kernel: chains (with hook and priority), rules
/// (by their stored comment), sets and maps with every element and its counter.
///
/// The generation is read before and after; if anything committed in between, the whole read
/// starts again, so a snapshot never mixes two generations.
struct RulesetReader {
    let socket: NetfilterSocket
    /// Whether to collect per-element counters (decoding and keeping 100k of them costs time
    /// and memory a reconcile does not need).
    var counters = true

    func read(_ tables: [TableID], attempts: Int = 8) throws -> KernelSnapshot {
        var attempt = 0
        while true {
            attempt += 1
            let before = try socket.rulesetGeneration()
            var snapshot = KernelSnapshot(ruleset: Ruleset(), counters: [:], generation: before)
            do {
                for id in tables {
                    guard let table = try readTable(id, counters: &snapshot.counters) else { continue }
                    snapshot.ruleset[id] = table
                }
            } catch is DumpInterrupted where attempt < attempts {
                continue
            }
            let after = try socket.rulesetGeneration()
            if after == before { return snapshot }
            if attempt >= attempts { throw NFTablesError.generationRace(attempts: attempt) }
        }
    }

    /// The generation and the marker in `id` (nil when absent or when the ruleset changed
    /// while reading).
    func readMarker(_ id: TableID) throws -> (generation: UInt32, marker: ReconcileMarker?) {
        let before = try socket.rulesetGeneration()
        var table = Table(id: id)
        var ignored: [ValueList: Counter] = [:]
        do {
            try readElements(of: ReconcileMarker.set, into: &table, counters: &ignored)
        } catch let error as NetlinkError where error.errno == ENOENT {
            return (before, nil)
        } catch is DumpInterrupted {
            return (before, nil)
        }
        let after = try socket.rulesetGeneration()
        guard after == before, let comment = table.elements[ReconcileMarker.setName]?[ReconcileMarker.key]?.comment else {
            return (after, nil)
        }
        return (after, ReconcileMarker(table: id, comment: comment))
    }

    private func readTable(_ id: TableID, counters: inout [TableID: [String: [ValueList: Counter]]]) throws -> Table? {
        let family = id.family.protocolFamily
        do {
            try socket.request(context: "reading table \(id)", build: { buffer, sequence in
                let header = nftnl_nlmsg_build_hdr(buffer.assumingMemoryBound(to: CChar.self), messageType(NFT_MSG_GETTABLE), family, UInt16(NLM_F_ACK), sequence)!
                guard let table = nftnl_table_alloc() else { fatalError("out of memory allocating a table") }
                nftnl_table_set_str(table, attribute(NFTNL_TABLE_NAME), id.name)
                nftnl_table_nlmsg_build_payload(header, table)
                nftnl_table_free(table)
                return Int(header.pointee.nlmsg_len)
            }, onMessage: { _ in })
        } catch let error as NetlinkError where error.errno == ENOENT {
            return nil
        }
        var table = Table(id: id)
        try readChains(into: &table)
        try readRules(into: &table)
        try readSets(into: &table)
        for name in table.sets.keys.sorted() {
            guard let set = table.sets[name] else { continue }
            var setCounters: [ValueList: Counter] = [:]
            try readElements(of: set, into: &table, counters: &setCounters)
            if set.counter && self.counters { counters[id, default: [:]][name] = setCounters }
        }
        return table
    }

    /// Sends a dump request for `type` filtered to this table (and `set` for elements).
    func dump(_ type: UInt16, _ id: TableID, set: String? = nil, context: String,
                      onMessage: (NetlinkMessage) throws -> Void) throws {
        try socket.request(context: context, build: { buffer, sequence in
            let header = nftnl_nlmsg_build_hdr(buffer.assumingMemoryBound(to: CChar.self), type, id.family.protocolFamily,
                                               UInt16(NLM_F_DUMP | NLM_F_ACK), sequence)!
            // All filter attributes share the table-name attribute number 1 (NFTA_*_TABLE).
            mnl_attr_put_strz(header, 1, id.name)
            if let set { mnl_attr_put_strz(header, 2, set) } // NFTA_SET_ELEM_LIST_SET
            return Int(header.pointee.nlmsg_len)
        }, onMessage: onMessage)
    }

    private func readChains(into table: inout Table) throws {
        let id = table.id
        try dump(messageType(NFT_MSG_GETCHAIN), id, context: "reading the chains of \(id)") { message in
            guard let chain = nftnl_chain_alloc() else { return }
            defer { nftnl_chain_free(chain) }
            guard nftnl_chain_nlmsg_parse(message.header, chain) >= 0,
                  let tableName = nftnl_chain_get_str(chain, attribute(NFTNL_CHAIN_TABLE)), String(cString: tableName) == id.name,
                  let name = nftnl_chain_get_str(chain, attribute(NFTNL_CHAIN_NAME)) else { return }
            var base: BaseChain?
            if nftnl_chain_is_set(chain, attribute(NFTNL_CHAIN_HOOKNUM)),
               let hook = BaseChain.Hook(number: nftnl_chain_get_u32(chain, attribute(NFTNL_CHAIN_HOOKNUM))) {
                let type = nftnl_chain_get_str(chain, attribute(NFTNL_CHAIN_TYPE)).map { String(cString: $0) } ?? "filter"
                base = BaseChain(kind: BaseChain.Kind(rawValue: type) ?? .filter, hook: hook,
                                 priority: nftnl_chain_get_s32(chain, attribute(NFTNL_CHAIN_PRIO)))
            }
            table.add(Chain(name: String(cString: name), base: base))
        }
    }

    /// Rules are known by their stored comment, so only two attributes are read (chain and
    /// userdata) straight from the message, without decoding every expression.
    private func readRules(into table: inout Table) throws {
        let id = table.id
        try dump(messageType(NFT_MSG_GETRULE), id, context: "reading the rules of \(id)") { message in
            var tableName: String?, chain: String?, stored = ""
            for attribute in message.nfnetlinkAttributes {
                switch attribute.type {
                case UInt16(NFTA_RULE_TABLE.rawValue): tableName = Self.string(attribute.payload)
                case UInt16(NFTA_RULE_CHAIN.rawValue): chain = Self.string(attribute.payload)
                case UInt16(NFTA_RULE_USERDATA.rawValue): stored = comment(fromUserData: attribute.payload) ?? ""
                default: break
                }
            }
            guard tableName == id.name, let chain else { return }
            table.rules[chain, default: []].append(Rule(storedComment: stored))
        }
    }

    /// A NUL-terminated netlink string attribute.
    private static func string(_ payload: UnsafeRawBufferPointer) -> String {
        String(decoding: payload.prefix { $0 != 0 }, as: UTF8.self)
    }

    func readSets(into table: inout Table) throws {
        let id = table.id
        try dump(messageType(NFT_MSG_GETSET), id, context: "reading the sets of \(id)") { message in
            guard let set = nftnl_set_alloc() else { return }
            defer { nftnl_set_free(set) }
            guard nftnl_set_nlmsg_parse(message.header, set) >= 0,
                  let tableName = nftnl_set_get_str(set, attribute(NFTNL_SET_TABLE)), String(cString: tableName) == id.name,
                  let name = nftnl_set_get_str(set, attribute(NFTNL_SET_NAME)),
                  String(cString: name) != ReconcileMarker.setName else { return }
            let flags = nftnl_set_get_u32(set, attribute(NFTNL_SET_FLAGS))
            let keyTypes = ElementCoding.types(fromID: nftnl_set_get_u32(set, attribute(NFTNL_SET_KEY_TYPE))) ?? []
            var dataTypes: [DataType]?
            if flags & number(NFT_SET_MAP) != 0 {
                let dataType = nftnl_set_get_u32(set, attribute(NFTNL_SET_DATA_TYPE))
                dataTypes = dataType == number(NFT_DATA_VERDICT) ? [.verdict] : (ElementCoding.types(fromID: dataType) ?? [])
            }
            let counter = nftnl_set_is_set(set, attribute(NFTNL_SET_EXPR)) || nftnl_set_is_set(set, attribute(NFTNL_SET_EXPRESSIONS))
            table.add(NFTSet(name: String(cString: name), keyTypes: keyTypes, dataTypes: dataTypes, counter: counter))
        }
    }

    /// Elements are decoded straight from the dump messages (key, data or verdict, comment,
    /// counter): at 100k elements, allocating a libnftnl object per element and per counter
    /// expression costs more than the kernel's dump itself.
    private func readElements(of set: NFTSet, into table: inout Table, counters: inout [ValueList: Counter]) throws {
        let id = table.id
        var elements = ElementSet()
        try dump(messageType(NFT_MSG_GETSETELEM), id, set: set.name, context: "reading the elements of \(id) \(set.name)") { message in
            for attribute in message.nfnetlinkAttributes where attribute.type == UInt16(NFTA_SET_ELEM_LIST_ELEMENTS.rawValue) {
                NetlinkMessage.forEachAttribute(in: attribute.payload) { _, item in
                    guard let (element, counter) = Self.decodeElement(item, set: set, counters: self.counters) else { return }
                    elements[element.key] = element
                    if let counter { counters[element.key] = counter }
                }
            }
        }
        table.elements[set.name] = elements
    }

    /// One `NFTA_LIST_ELEM` of an element dump.
    private static func decodeElement(_ bytes: UnsafeRawBufferPointer, set: NFTSet, counters: Bool) -> (Element, Counter?)? {
        var key: ValueList?
        var data: ElementData?
        var comment: String?
        var counter: Counter?
        NetlinkMessage.forEachAttribute(in: bytes) { type, payload in
            switch type {
            case UInt16(NFTA_SET_ELEM_KEY.rawValue):
                NetlinkMessage.forEachAttribute(in: payload) { inner, value in
                    if inner == UInt16(NFTA_DATA_VALUE.rawValue) { key = ElementCoding.values(value, types: set.keyTypes) }
                }
            case UInt16(NFTA_SET_ELEM_DATA.rawValue):
                NetlinkMessage.forEachAttribute(in: payload) { inner, value in
                    if inner == UInt16(NFTA_DATA_VALUE.rawValue), let types = set.dataTypes, let values = ElementCoding.values(value, types: types) {
                        data = .values(values)
                    } else if inner == UInt16(NFTA_DATA_VERDICT.rawValue) {
                        data = .verdict(decodeVerdict(value))
                    }
                }
            case UInt16(NFTA_SET_ELEM_USERDATA.rawValue):
                comment = NFTables.comment(fromUserData: payload)
            default:
                if counters { Self.takeCounter(type: type, payload: payload, into: &counter) }
            }
        }
        guard let key else { return nil }
        return (Element(key: key, data: data, comment: comment), counter)
    }

    private static func decodeVerdict(_ bytes: UnsafeRawBufferPointer) -> Verdict {
        var code: Int32 = Int32(NF_ACCEPT)
        var chain = ""
        NetlinkMessage.forEachAttribute(in: bytes) { type, payload in
            if type == UInt16(NFTA_VERDICT_CODE.rawValue), payload.count >= 4 {
                code = Int32(bitPattern: UInt32(bigEndian: payload.loadUnaligned(as: UInt32.self)))
            } else if type == UInt16(NFTA_VERDICT_CHAIN.rawValue) {
                chain = string(payload)
            }
        }
        switch code {
        case NFT_JUMP.rawValue: return .jump(chain)
        case NFT_GOTO.rawValue: return .goto(chain)
        case Int32(NF_DROP): return .drop
        default: return .accept
        }
    }

    /// A `counter` expression's packets and bytes; nil for other expressions.
    /// Takes an element's counter from one of its attributes: a single expression
    /// (`NFTA_SET_ELEM_EXPR`) or a list (`NFTA_SET_ELEM_EXPRESSIONS`); the first counter wins.
    static func takeCounter(type: UInt16, payload: UnsafeRawBufferPointer, into counter: inout Counter?) {
        if type == UInt16(NFTA_SET_ELEM_EXPR.rawValue) {
            counter = counter ?? decodeCounter(payload)
        } else if type == UInt16(NFTA_SET_ELEM_EXPRESSIONS.rawValue) {
            NetlinkMessage.forEachAttribute(in: payload) { _, expression in counter = counter ?? decodeCounter(expression) }
        }
    }

    static func decodeCounter(_ bytes: UnsafeRawBufferPointer) -> Counter? {
        var isCounter = false
        var packets: UInt64 = 0, octets: UInt64 = 0
        NetlinkMessage.forEachAttribute(in: bytes) { type, payload in
            if type == UInt16(NFTA_EXPR_NAME.rawValue) {
                isCounter = string(payload) == "counter"
            } else if type == UInt16(NFTA_EXPR_DATA.rawValue) {
                NetlinkMessage.forEachAttribute(in: payload) { inner, value in
                    guard value.count >= 8 else { return }
                    let number = UInt64(bigEndian: value.loadUnaligned(as: UInt64.self))
                    if inner == UInt16(NFTA_COUNTER_PACKETS.rawValue) { packets = number }
                    if inner == UInt16(NFTA_COUNTER_BYTES.rawValue) { octets = number }
                }
            }
        }
        return isCounter ? Counter(packets: packets, bytes: octets) : nil
    }
}
