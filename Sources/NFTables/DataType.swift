/// The nft data types set keys and map values are made of.
public enum DataType: Hashable, Sendable, CustomStringConvertible {
    case ipv4Address
    case ipv6Address
    case inetProto
    case inetService
    case verdict

    /// nft's type id (`TYPE_*` in nftables' datatype.h), used in `NFTA_SET_KEY_TYPE`.
    var nftTypeID: UInt32 {
        switch self {
        case .verdict: 1
        case .ipv4Address: 7
        case .ipv6Address: 8
        case .inetProto: 12
        case .inetService: 13
        }
    }

    /// Bytes of the value itself.
    var size: Int {
        switch self {
        case .ipv4Address: 4
        case .ipv6Address: 16
        case .inetProto: 1
        case .inetService: 2
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
