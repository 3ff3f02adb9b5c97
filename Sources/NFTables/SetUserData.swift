/// The userdata nft stores with a set declared by `typeof` (libnftnl's `nftnl_udata` records:
/// one byte of type, one of length, then the value; numbers in host byte order).
///
/// nft cannot print the elements of a set whose key holds a plain `integer` (the bucket of
/// `balance-targets`) unless it knows which expression produced it, so the agent records the
/// key and data as the expressions nft itself would: `ip daddr . meta l4proto . th dport .
/// numgen random mod 2 : ip daddr . th dport`. The kernel ignores this blob.
enum SetUserData {
    /// `NFTNL_UDATA_SET_*` record types.
    private static let keyByteOrder: UInt8 = 0, dataByteOrder: UInt8 = 1, keyTypeof: UInt8 = 3, dataTypeof: UInt8 = 4
    /// nft's `enum expr_types` values for the expressions used here.
    private static let payloadExpression: UInt32 = 7, metaExpression: UInt32 = 9, concatExpression: UInt32 = 13, numgenExpression: UInt32 = 23

    /// The blob for a set with these key and (map) data types.
    static func typeof(keyTypes: [DataType], dataTypes: [DataType]?) -> [UInt8] {
        var blob = number(keyByteOrder, 0) + number(dataByteOrder, 0)
        blob += record(keyTypeof, expression(keyTypes))
        if let dataTypes, dataTypes != [.verdict] { blob += record(dataTypeof, expression(dataTypes)) }
        return blob
    }

    /// `{ 0: expression kind, 1: its details }`, a concatenation when several types.
    private static func expression(_ types: [DataType]) -> [UInt8] {
        guard types.count > 1 else { return single(types[0]) }
        var parts: [UInt8] = []
        for (index, type) in types.enumerated() { parts += record(UInt8(index), single(type)) }
        return number(0, concatExpression) + record(1, parts)
    }

    private static func single(_ type: DataType) -> [UInt8] {
        switch type {
        // payload: { 0: header description (proto_ip 12, proto_ip6 13, proto_th 11), 1: field }
        case .ipv4Address: return number(0, payloadExpression) + record(1, number(0, 12) + number(1, 12)) // ip daddr
        case .ipv6Address: return number(0, payloadExpression) + record(1, number(0, 13) + number(1, 9)) // ip6 daddr
        case .inetService: return number(0, payloadExpression) + record(1, number(0, 11) + number(1, 2)) // th dport
        // meta: { 0: key } (NFT_META_L4PROTO)
        case .inetProto: return number(0, metaExpression) + record(1, number(0, 16))
        // numgen: { 0: type (NFT_NG_RANDOM), 1: modulus, 2: offset }
        case .integer: return number(0, numgenExpression) + record(1, number(0, 1) + number(1, 2) + number(2, 0))
        case .verdict: return []
        }
    }

    private static func record(_ type: UInt8, _ value: [UInt8]) -> [UInt8] {
        precondition(value.count < 256, "an nftnl_udata record holds at most 255 bytes")
        return [type, UInt8(value.count)] + value
    }

    private static func number(_ type: UInt8, _ value: UInt32) -> [UInt8] {
        record(type, withUnsafeBytes(of: value) { Array($0) })
    }
}
