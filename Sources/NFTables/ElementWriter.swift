#if canImport(Glibc)
import Glibc
#endif
import CNftnl
import CMnl

/// Writes set elements straight into a netlink message with libmnl's attribute helpers.
///
/// At 100k elements, building a libnftnl object per element (and an array per key, value and
/// comment) costs more than the kernel spends inserting them; the attribute layout is small
/// and fixed (`NFTA_LIST_ELEM` { key, data or verdict, userdata }), so it is written directly
/// from the values, through one scratch buffer and without allocating.
struct ElementWriter {
    /// Scratch space for one key, value or comment (a comment is cut at 250 bytes).
    private let scratch: UnsafeMutableRawPointer
    static let scratchSize = 512

    init() {
        guard let memory = malloc(Self.scratchSize) else { fatalError("out of memory allocating an element scratch buffer") }
        scratch = memory
    }

    /// Frees the scratch buffer; the writer must not be used afterwards.
    func free() { Glibc.free(scratch) }

    /// Appends one `NFTA_LIST_ELEM` to the element list being built in `header`. For a deletion
    /// only the key is written. With `counter`, the element's counter expression starts at
    /// those packets and bytes instead of zero (the set's own `counter` expression is used
    /// otherwise).
    func write(_ element: Element, withData: Bool, counter: Counter? = nil, into header: UnsafeMutablePointer<nlmsghdr>) {
        guard let item = mnl_attr_nest_start(header, attribute(NFTA_LIST_ELEM)) else { return }
        putValue(element.key, type: attribute(NFTA_SET_ELEM_KEY), into: header)
        if withData {
            switch element.data {
            case .values(let values)?:
                putValue(values, type: attribute(NFTA_SET_ELEM_DATA), into: header)
            case .verdict(let verdict)?:
                let data = mnl_attr_nest_start(header, attribute(NFTA_SET_ELEM_DATA))
                let nest = mnl_attr_nest_start(header, attribute(NFTA_DATA_VERDICT))
                let code: Int32
                switch verdict {
                case .accept: code = Int32(NF_ACCEPT)
                case .drop: code = Int32(NF_DROP)
                case .jump: code = NFT_JUMP.rawValue
                case .goto: code = NFT_GOTO.rawValue
                }
                mnl_attr_put_u32(header, attribute(NFTA_VERDICT_CODE), UInt32(bitPattern: code).bigEndian)
                if let chain = verdict.chain { mnl_attr_put_strz(header, attribute(NFTA_VERDICT_CHAIN), chain) }
                mnl_attr_nest_end(header, nest)
                mnl_attr_nest_end(header, data)
            case nil:
                break
            }
            if var comment = element.comment {
                // nft's userdata TLV: type 0 (comment), length, NUL-terminated text.
                let length = comment.withUTF8 { text -> Int in
                    let count = min(text.count, 250)
                    if let base = text.baseAddress { (scratch + 2).copyMemory(from: base, byteCount: count) }
                    return count
                }
                scratch.storeBytes(of: 0, as: UInt8.self)
                scratch.storeBytes(of: UInt8(length + 1), toByteOffset: 1, as: UInt8.self)
                scratch.storeBytes(of: 0, toByteOffset: 2 + length, as: UInt8.self)
                mnl_attr_put(header, attribute(NFTA_SET_ELEM_USERDATA), 3 + length, scratch)
            }
            if let counter {
                // NFTA_SET_ELEM_EXPR { name "counter", data { bytes, packets } }: the kernel
                // takes it in place of a clone of the set's counter (same expression type).
                let expression = mnl_attr_nest_start(header, attribute(NFTA_SET_ELEM_EXPR))
                mnl_attr_put_strz(header, attribute(NFTA_EXPR_NAME), "counter")
                let data = mnl_attr_nest_start(header, attribute(NFTA_EXPR_DATA))
                mnl_attr_put_u64(header, attribute(NFTA_COUNTER_BYTES), counter.bytes.bigEndian)
                mnl_attr_put_u64(header, attribute(NFTA_COUNTER_PACKETS), counter.packets.bigEndian)
                mnl_attr_nest_end(header, data)
                mnl_attr_nest_end(header, expression)
            }
        }
        mnl_attr_nest_end(header, item)
    }

    /// A key or value as `type { NFTA_DATA_VALUE bytes }`.
    private func putValue(_ values: ValueList, type: UInt16, into header: UnsafeMutablePointer<nlmsghdr>) {
        let nest = mnl_attr_nest_start(header, type)
        let length = ElementCoding.write(values, to: scratch)
        mnl_attr_put(header, attribute(NFTA_DATA_VALUE), length, scratch)
        mnl_attr_nest_end(header, nest)
    }
}
