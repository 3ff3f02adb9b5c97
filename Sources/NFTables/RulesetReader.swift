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
            if set.counter { counters[id, default: [:]][name] = setCounters }
        }
        return table
    }

    /// Sends a dump request for `type` filtered to this table (and `set` for elements).
    private func dump(_ type: UInt16, _ id: TableID, set: String? = nil, context: String,
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

    private func readSets(into table: inout Table) throws {
        let id = table.id
        try dump(messageType(NFT_MSG_GETSET), id, context: "reading the sets of \(id)") { message in
            guard let set = nftnl_set_alloc() else { return }
            defer { nftnl_set_free(set) }
            guard nftnl_set_nlmsg_parse(message.header, set) >= 0,
                  let tableName = nftnl_set_get_str(set, attribute(NFTNL_SET_TABLE)), String(cString: tableName) == id.name,
                  let name = nftnl_set_get_str(set, attribute(NFTNL_SET_NAME)) else { return }
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

    private func readElements(of set: NFTSet, into table: inout Table, counters: inout [ValueList: Counter]) throws {
        let id = table.id
        var elements: [ValueList: Element] = [:]
        try dump(messageType(NFT_MSG_GETSETELEM), id, set: set.name, context: "reading the elements of \(id) \(set.name)") { message in
            guard let container = nftnl_set_alloc() else { return }
            defer { nftnl_set_free(container) }
            guard nftnl_set_elems_nlmsg_parse(message.header, container) >= 0,
                  let iterator = nftnl_set_elems_iter_create(container) else { return }
            defer { nftnl_set_elems_iter_destroy(iterator) }
            var item = nftnl_set_elems_iter_next(iterator)
            while let current = item {
                item = nftnl_set_elems_iter_next(iterator)
                var length: UInt32 = 0
                guard let keyData = nftnl_set_elem_get(current, attribute(NFTNL_SET_ELEM_KEY), &length),
                      let key = ElementCoding.values(UnsafeRawBufferPointer(start: keyData, count: Int(length)), types: set.keyTypes)
                else { continue }
                var element = Element(key: key)
                if set.isVerdictMap, nftnl_set_elem_is_set(current, attribute(NFTNL_SET_ELEM_VERDICT)) {
                    let code = Int32(bitPattern: nftnl_set_elem_get_u32(current, attribute(NFTNL_SET_ELEM_VERDICT)))
                    let chain = nftnl_set_elem_get_str(current, attribute(NFTNL_SET_ELEM_CHAIN)).map { String(cString: $0) } ?? ""
                    switch code {
                    case NFT_JUMP.rawValue: element.data = .verdict(.jump(chain))
                    case NFT_GOTO.rawValue: element.data = .verdict(.goto(chain))
                    case Int32(NF_DROP): element.data = .verdict(.drop)
                    default: element.data = .verdict(.accept)
                    }
                } else if let dataTypes = set.dataTypes,
                          let data = nftnl_set_elem_get(current, attribute(NFTNL_SET_ELEM_DATA), &length),
                          let values = ElementCoding.values(UnsafeRawBufferPointer(start: data, count: Int(length)), types: dataTypes) {
                    element.data = .values(values)
                }
                if let data = nftnl_set_elem_get(current, attribute(NFTNL_SET_ELEM_USERDATA), &length) {
                    element.comment = comment(fromUserData: UnsafeRawBufferPointer(start: data, count: Int(length)))
                }
                if set.counter, let expression = nftnl_set_elem_get(current, attribute(NFTNL_SET_ELEM_EXPR), &length) {
                    let counter = OpaquePointer(expression)
                    counters[key] = Counter(packets: nftnl_expr_get_u64(counter, attribute(NFTNL_EXPR_CTR_PACKETS)),
                                            bytes: nftnl_expr_get_u64(counter, attribute(NFTNL_EXPR_CTR_BYTES)))
                }
                elements[key] = element
            }
        }
        table.elements[set.name] = elements
    }
}
