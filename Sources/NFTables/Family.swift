#if canImport(Glibc)
import Glibc
#endif

/// The nftables families the agent uses: one table for IPv4, one for IPv6.
public enum Family: String, CaseIterable, Hashable, Comparable, Sendable {
    case ip
    case ip6

    /// The `NFPROTO_*` number netlink uses.
    public var protocolFamily: UInt16 { self == .ip ? 2 : 10 }

    /// The nft keyword for an address match in this family (`ip` / `ip6`).
    var addressKeyword: String { rawValue }

    /// The type of this family's addresses in sets.
    public var addressType: DataType { self == .ip ? .ipv4Address : .ipv6Address }

    public static func < (lhs: Family, rhs: Family) -> Bool { lhs.protocolFamily < rhs.protocolFamily }
}

/// A table, identified as nft identifies it: family and name.
public struct TableID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var family: Family
    public var name: String

    public init(family: Family, name: String) {
        self.family = family
        self.name = name
    }

    public var description: String { "\(family.rawValue) \(name)" }

    /// Hashes the family and the name's length only: the agent has two tables, and hashing the
    /// name (and the family's raw `String`) on every element insert showed up in profiles.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(family.protocolFamily)
        hasher.combine(name.utf8.count)
    }

    public static func < (lhs: TableID, rhs: TableID) -> Bool { (lhs.family, lhs.name) < (rhs.family, rhs.name) }
}
