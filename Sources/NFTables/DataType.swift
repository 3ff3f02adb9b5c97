/// The nft data types set keys and map values are made of.
public enum DataType: Hashable, Sendable, CustomStringConvertible {
    case ipv4Address
    case ipv6Address
    case inetProto
    case inetService
    /// A 32-bit number in host byte order (`integer`; the agent uses it for a `numgen` bucket).
    case integer
    case verdict

    /// nft's type id (`TYPE_*` in nftables' datatype.h), used in `NFTA_SET_KEY_TYPE`.
    var nftTypeID: UInt32 {
        switch self {
        case .verdict: 1
        case .ipv4Address: 7
        case .ipv6Address: 8
        case .inetProto: 12
        case .inetService: 13
        case .integer: 4
        }
    }

    /// Bytes of the value itself.
    var size: Int {
        switch self {
        case .ipv4Address: 4
        case .ipv6Address: 16
        case .inetProto: 1
        case .inetService: 2
        case .integer: 4
        case .verdict: 0
        }
    }

    /// Bytes it takes in a concatenation (each part is padded to a 32-bit register).
    var paddedSize: Int { (size + 3) & ~3 }

    public var description: String {
        switch self {
        case .ipv4Address: "ipv4_addr"
        case .ipv6Address: "ipv6_addr"
        case .inetProto: "inet_proto"
        case .inetService: "inet_service"
        case .integer: "integer"
        case .verdict: "verdict"
        }
    }

    /// The expression nft would load a value of this type from, for `typeof` declarations
    /// (nft cannot parse `type … . integer`, so sets holding an integer are declared by
    /// `typeof`, which records the same key type).
    var typeofExpression: String {
        switch self {
        case .ipv4Address: "ip daddr"
        case .ipv6Address: "ip6 daddr"
        case .inetProto: "meta l4proto"
        case .inetService: "th dport"
        case .integer: "numgen random mod 2"
        case .verdict: "verdict"
        }
    }

    /// The concatenated type id nft stores for `types` (6 bits per part).
    static func concatenatedID(_ types: [DataType]) -> UInt32 {
        types.reduce(0) { ($0 << 6) | $1.nftTypeID }
    }

    /// The total length of a concatenated key of `types`.
    static func length(_ types: [DataType]) -> Int {
        types.count == 1 ? types[0].size : types.reduce(0) { $0 + $1.paddedSize }
    }
}
