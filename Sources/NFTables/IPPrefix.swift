/// An address range in CIDR form (`10.0.0.0/8`, `fd00::/64`), host bits cleared.
public struct IPPrefix: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The first address of the range.
    public let network: IPAddress
    /// Leading bits that must match: 0…32 (IPv4) or 0…128 (IPv6).
    public let length: Int

    /// Parses `ADDRESS/LENGTH` (a bare address is a one-address prefix); nil for anything
    /// else. Host bits are cleared, so `10.1.2.3/8` is `10.0.0.0/8`.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(String(parts[0])) else { return nil }
        let bits = address.byteCount * 8
        var length = bits
        if parts.count == 2 {
            guard let parsed = Int(parts[1]), (0 ... bits).contains(parsed), parts[1].allSatisfy(\.isASCII) else { return nil }
            length = parsed
        }
        self.init(address, length: length)
    }

    /// The prefix of `address` with `length` leading bits (clamped to the family's width).
    public init(_ address: IPAddress, length: Int) {
        let bits = address.byteCount * 8
        self.length = max(0, min(length, bits))
        let mask = Self.mask(length: self.length, family: address.family)
        network = IPAddress(high: address.high & mask.high, low: address.low & mask.low, family: address.family)
    }

    public var family: Family { network.family }

    /// The mask's bytes in network order (``IPAddress/byteCount`` of them).
    public var maskBytes: [UInt8] {
        let mask = Self.mask(length: length, family: family)
        return IPAddress(high: mask.high, low: mask.low, family: family).bytes
    }

    /// Whether the prefix covers every address of its family (`0.0.0.0/0`, `::/0`).
    public var isEverything: Bool { length == 0 }

    public func contains(_ address: IPAddress) -> Bool {
        guard address.family == family else { return false }
        let mask = Self.mask(length: length, family: family)
        return address.high & mask.high == network.high && address.low & mask.low == network.low
    }

    public var description: String { "\(network)/\(length)" }

    public static func < (lhs: IPPrefix, rhs: IPPrefix) -> Bool { (lhs.network, lhs.length) < (rhs.network, rhs.length) }

    /// The mask as ``IPAddress`` stores addresses: IPv4 in the top 32 bits of `high`.
    private static func mask(length: Int, family: Family) -> (high: UInt64, low: UInt64) {
        func ones(_ count: Int) -> UInt64 { count <= 0 ? 0 : count >= 64 ? .max : ~(UInt64.max >> UInt64(count)) }
        if family == .ip { return (ones(length) & 0xffff_ffff_0000_0000, 0) }
        return (ones(length), ones(length - 64))
    }
}
