#if canImport(Glibc)
import Glibc
#endif
import CNftnl
import CMnl
import Netlink

/// Turns a ``Transaction`` into one netlink batch of nf_tables messages through libnftnl.
///
/// Element lists are split into messages whose element nest stays well under the 64 KiB
/// netlink attribute limit. Every message remembers which operation (and which elements) it
/// carries so a kernel error can be traced back to the service concerned.
struct BatchEncoder {
    /// What one message of the batch carries.
    struct Subject {
        var operation: Int
        /// For element messages: the range of the operation's elements in this message.
        var elements: Range<Int>?
    }

    private(set) var subjects: [Subject] = []
    private var setID: UInt32 = 1
    /// Bytes of element payload per message; the nest length field is 16 bits.
    static let elementBudget = 48 * 1024

    /// Encodes every operation. Only the last message asks for an ack: the kernel reports every
    /// failing message anyway, and one ack per message would overflow the receive buffer on
    /// large batches (the last ack tells that the whole batch was processed).
    mutating func encode(_ transaction: Transaction, into batch: NetlinkBatch) {
        for (index, operation) in transaction.operations.enumerated() {
            encode(operation, index: index, carried: transaction.carriedCounters, into: batch)
        }
        batch.requestAckOnLastMessage()
    }

    private mutating func subject(_ operation: Int, _ elements: Range<Int>? = nil) -> Int {
        subjects.append(Subject(operation: operation, elements: elements))
        return subjects.count - 1
    }

    /// `carried`: the transaction's carried counters, given to the elements it adds (usually
    /// empty: one check per element list, not per element).
    private mutating func encode(_ operation: Operation, index: Int, carried: [ElementAddress: Counter], into batch: NetlinkBatch) {
        let id = operation.table
        let family = id.family.protocolFamily
        let create = UInt16(NLM_F_CREATE)
        switch operation {
        case .addTable, .deleteTable:
            let isAdd: Bool = { if case .addTable = operation { return true } else { return false } }()
            guard let table = nftnl_table_alloc() else { fatalError("out of memory allocating a table") }
            defer { nftnl_table_free(table) }
            nftnl_table_set_str(table, attribute(NFTNL_TABLE_NAME), id.name)
            nftnl_table_set_u32(table, attribute(NFTNL_TABLE_FAMILY), UInt32(family))
            message(batch, subject(index), isAdd ? messageType(NFT_MSG_NEWTABLE) : messageType(NFT_MSG_DELTABLE), family,
                    isAdd ? create : 0) { nftnl_table_nlmsg_build_payload($0, table) }
        case .addChain(_, let chain):
            let object = makeChain(id, chain.name)
            defer { nftnl_chain_free(object) }
            if let base = chain.base {
                nftnl_chain_set_u32(object, attribute(NFTNL_CHAIN_HOOKNUM), base.hook.number)
                nftnl_chain_set_s32(object, attribute(NFTNL_CHAIN_PRIO), base.priority)
                nftnl_chain_set_str(object, attribute(NFTNL_CHAIN_TYPE), base.kind.rawValue)
                nftnl_chain_set_u32(object, attribute(NFTNL_CHAIN_POLICY), UInt32(NF_ACCEPT))
            }
            message(batch, subject(index), messageType(NFT_MSG_NEWCHAIN), family, create) { nftnl_chain_nlmsg_build_payload($0, object) }
        case .deleteChain(_, let name):
            let object = makeChain(id, name)
            defer { nftnl_chain_free(object) }
            message(batch, subject(index), messageType(NFT_MSG_DELCHAIN), family, 0) { nftnl_chain_nlmsg_build_payload($0, object) }
        case .flushChain(_, let name):
            let rule = makeRule(id, chain: name)
            defer { nftnl_rule_free(rule) }
            message(batch, subject(index), messageType(NFT_MSG_DELRULE), family, 0) { nftnl_rule_nlmsg_build_payload($0, rule) }
        case .addRule(_, let chain, let rule):
            let object = makeRule(id, chain: chain)
            defer { nftnl_rule_free(object) }
            for expression in rule.expressions { expression.encode(into: object, family: id.family) }
            let data = commentUserData(rule.storedComment)
            data.withUnsafeBytes { _ = nftnl_rule_set_data(object, attribute(NFTNL_RULE_USERDATA), $0.baseAddress, UInt32($0.count)) }
            message(batch, subject(index), messageType(NFT_MSG_NEWRULE), family, create | UInt16(NLM_F_APPEND)) {
                nftnl_rule_nlmsg_build_payload($0, object)
            }
        case .addSet(_, let set):
            let object = makeSet(id, set.name)
            defer { nftnl_set_free(object) }
            nftnl_set_set_u32(object, attribute(NFTNL_SET_KEY_TYPE), DataType.concatenatedID(set.keyTypes))
            nftnl_set_set_u32(object, attribute(NFTNL_SET_KEY_LEN), UInt32(DataType.length(set.keyTypes)))
            nftnl_set_set_u32(object, attribute(NFTNL_SET_ID), setID)
            setID += 1
            if let dataTypes = set.dataTypes {
                nftnl_set_set_u32(object, attribute(NFTNL_SET_FLAGS), number(NFT_SET_MAP))
                if set.isVerdictMap {
                    nftnl_set_set_u32(object, attribute(NFTNL_SET_DATA_TYPE), number(NFT_DATA_VERDICT))
                } else {
                    nftnl_set_set_u32(object, attribute(NFTNL_SET_DATA_TYPE), DataType.concatenatedID(dataTypes))
                    nftnl_set_set_u32(object, attribute(NFTNL_SET_DATA_LEN), UInt32(DataType.length(dataTypes)))
                }
            } else {
                nftnl_set_set_u32(object, attribute(NFTNL_SET_FLAGS), 0)
            }
            if set.counter, let counter = nftnl_expr_alloc("counter") { nftnl_set_add_expr(object, counter) }
            if set.keyTypes.contains(.integer) {
                let data = SetUserData.typeof(keyTypes: set.keyTypes, dataTypes: set.dataTypes)
                data.withUnsafeBytes { _ = nftnl_set_set_data(object, attribute(NFTNL_SET_USERDATA), $0.baseAddress, UInt32($0.count)) }
            }
            message(batch, subject(index), messageType(NFT_MSG_NEWSET), family, create) { nftnl_set_nlmsg_build_payload($0, object) }
        case .deleteSet(_, let name):
            let object = makeSet(id, name)
            defer { nftnl_set_free(object) }
            message(batch, subject(index), messageType(NFT_MSG_DELSET), family, 0) { nftnl_set_nlmsg_build_payload($0, object) }
        case .flushSet(_, let name):
            // A DELSETELEM without an element list empties the set.
            message(batch, subject(index), messageType(NFT_MSG_DELSETELEM), family, 0) { header in
                mnl_attr_put_strz(header, attribute(NFTA_SET_ELEM_LIST_TABLE), id.name)
                mnl_attr_put_strz(header, attribute(NFTA_SET_ELEM_LIST_SET), name)
            }
        case .addElements(_, let set, let elements):
            encodeElements(elements, set: set, id: id, carried: carried, index: index, into: batch)
        case .deleteElements(_, let set, let elements):
            encodeElements(elements, set: set, id: id, carried: nil, index: index, into: batch)
        }
    }

    /// Element lists go out in messages of about ``elementBudget`` bytes, written by
    /// ``ElementWriter`` without libnftnl objects.
    /// `carried` is nil for a deletion, else the counters the added elements start from.
    private mutating func encodeElements(_ elements: ElementList, set: String, id: TableID, carried: [ElementAddress: Counter]?,
                                         index: Int, into batch: NetlinkBatch) {
        let add = carried != nil
        let type = add ? messageType(NFT_MSG_NEWSETELEM) : messageType(NFT_MSG_DELSETELEM)
        let flags = UInt16(add ? NLM_F_CREATE : 0)
        let family = id.family.protocolFamily
        let writer = ElementWriter()
        defer { writer.free() }
        let carried = carried ?? [:]
        var iterator = elements.makeIterator()
        var pending = iterator.next()
        var start = 0
        while pending != nil {
            var end = start
            let slot = subject(index, start ..< start)
            // Room for the budget plus one element of the largest kind (a 250-byte comment, a
            // chain name up to 256 bytes, keys and values of at most 64 bytes each).
            batch.append(subject: slot, maximumLength: Self.elementBudget + 4096) { buffer, sequence in
                let header = nftnl_nlmsg_build_hdr(buffer.assumingMemoryBound(to: CChar.self), type, family, flags, sequence)!
                mnl_attr_put_strz(header, attribute(NFTA_SET_ELEM_LIST_TABLE), id.name)
                mnl_attr_put_strz(header, attribute(NFTA_SET_ELEM_LIST_SET), set)
                let list = mnl_attr_nest_start(header, attribute(NFTA_SET_ELEM_LIST_ELEMENTS))
                while let element = pending, Int(header.pointee.nlmsg_len) < Self.elementBudget {
                    pending = iterator.next()
                    let counter = carried.isEmpty ? nil : carried[ElementAddress(table: id, set: set, key: element.key)]
                    writer.write(element, withData: add, counter: counter, into: header)
                    end += 1
                }
                mnl_attr_nest_end(header, list)
                return Int(header.pointee.nlmsg_len)
            }
            subjects[slot].elements = start ..< end
            start = end
        }
    }

    private func message(_ batch: NetlinkBatch, _ subject: Int, _ type: UInt16, _ family: UInt16, _ flags: UInt16,
                         maximum: Int = 1 << 16, _ payload: (UnsafeMutablePointer<nlmsghdr>) -> Void) {
        batch.append(subject: subject, maximumLength: maximum) { buffer, sequence in
            let header = nftnl_nlmsg_build_hdr(buffer.assumingMemoryBound(to: CChar.self), type, family, flags, sequence)!
            payload(header)
            return Int(header.pointee.nlmsg_len)
        }
    }

    private func makeChain(_ id: TableID, _ name: String) -> OpaquePointer {
        guard let chain = nftnl_chain_alloc() else { fatalError("out of memory allocating a chain") }
        nftnl_chain_set_str(chain, attribute(NFTNL_CHAIN_TABLE), id.name)
        nftnl_chain_set_str(chain, attribute(NFTNL_CHAIN_NAME), name)
        nftnl_chain_set_u32(chain, attribute(NFTNL_CHAIN_FAMILY), UInt32(id.family.protocolFamily))
        return chain
    }

    private func makeRule(_ id: TableID, chain: String) -> OpaquePointer {
        guard let rule = nftnl_rule_alloc() else { fatalError("out of memory allocating a rule") }
        nftnl_rule_set_str(rule, attribute(NFTNL_RULE_TABLE), id.name)
        nftnl_rule_set_str(rule, attribute(NFTNL_RULE_CHAIN), chain)
        nftnl_rule_set_u32(rule, attribute(NFTNL_RULE_FAMILY), UInt32(id.family.protocolFamily))
        return rule
    }

    private func makeSet(_ id: TableID, _ name: String) -> OpaquePointer {
        guard let set = nftnl_set_alloc() else { fatalError("out of memory allocating a set") }
        nftnl_set_set_str(set, attribute(NFTNL_SET_TABLE), id.name)
        nftnl_set_set_str(set, attribute(NFTNL_SET_NAME), name)
        nftnl_set_set_u32(set, attribute(NFTNL_SET_FAMILY), UInt32(id.family.protocolFamily))
        return set
    }
}
