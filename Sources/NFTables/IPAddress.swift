#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address, stored inline (no allocation) so that hundreds of thousands of
/// set elements stay cheap to hash and compare.
public struct IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The address bytes in network order: the first 4 for IPv4, all 16 for IPv6.
    public private(set) var high: UInt64
    public private(set) var low: UInt64
    public let family: Family

    /// Parses dotted-quad IPv4 or any RFC 4291 IPv6 spelling; nil for anything else.
    public init?(_ text: String) {
        // Straight from the parsed bytes, without an intermediate array: the agent parses a
        // few hundred thousand addresses when it translates a large state.
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self = withUnsafeBytes(of: v4.s_addr) { IPAddress(v4Bytes: $0) }
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        self = withUnsafeBytes(of: v6) { IPAddress(v6Bytes: $0) }
    }

    /// An IPv4 address from its 4 network-order bytes.
    public init(v4Bytes bytes: some Collection<UInt8>) {
        family = .ip
        var value: UInt64 = 0
        for byte in bytes.prefix(4) { value = value << 8 | UInt64(byte) }
        high = value << 32
        low = 0
    }

    /// An IPv6 address from its 16 network-order bytes.
    public init(v6Bytes bytes: some Collection<UInt8>) {
        family = .ip6
        var high: UInt64 = 0, low: UInt64 = 0
        for (index, byte) in bytes.prefix(16).enumerated() {
            if index < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
        }
        self.high = high
        self.low = low
    }

    /// An address from the words ``high`` and ``low`` hold.
    init(high: UInt64, low: UInt64, family: Family) {
        self.high = high
        self.low = low
        self.family = family
    }

    /// 4 or 16.
    public var byteCount: Int { family == .ip ? 4 : 16 }

    /// The address bytes in network order.
    public var bytes: [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(byteCount)
        for shift in stride(from: 56, through: 0, by: -8) { result.append(UInt8(truncatingIfNeeded: high >> UInt64(shift))) }
        if family == .ip { return Array(result.prefix(4)) }
        for shift in stride(from: 56, through: 0, by: -8) { result.append(UInt8(truncatingIfNeeded: low >> UInt64(shift))) }
        return result
    }

    /// Writes the network-order bytes at `pointer` (which must have ``byteCount`` bytes).
    func write(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: high.bigEndian, toByteOffset: 0, as: UInt64.self)
        if family == .ip6 { pointer.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self) }
        // For IPv4 only the first 4 bytes matter; callers size the buffer accordingly.
    }

    public var description: String {
        let raw = bytes
        if family == .ip { return raw.map(String.init).joined(separator: ".") }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var address = in6_addr()
        withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: raw) }
        guard inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Hashes the two words only: the synthesized hash would also hash the family's raw
    /// `String` value, the dominant cost of hashing 100k set keys. (Equality still compares
    /// the family.)
    public func hash(into hasher: inout Hasher) {
        hasher.combine(high)
        hasher.combine(low)
    }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        (lhs.family == .ip ? 0 : 1, lhs.high, lhs.low) < (rhs.family == .ip ? 0 : 1, rhs.high, rhs.low)
    }
}
