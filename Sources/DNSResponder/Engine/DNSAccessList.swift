#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// The client address ranges allowed to query the responder; everyone else gets REFUSED,
/// so the responder is never an open resolver.
public struct DNSAccessList: Sendable, Equatable {
    private var v4: [(network: UInt32, mask: UInt32)]
    private var v6: [(network: (UInt64, UInt64), mask: (UInt64, UInt64))]

    /// Loopback, private (RFC 1918, RFC 4193) and link-local ranges: what pods and the node
    /// use, and nothing routable from outside.
    public static let defaultRanges = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
                                       "::1/128", "fc00::/7", "fe80::/10"]

    /// Parses ranges such as `10.0.0.0/8`, `fd00::/8` or a single address.
    ///
    /// - Throws: ``DNSAccessListError`` naming the bad range.
    public init(_ ranges: [String]) throws {
        v4 = []
        v6 = []
        for text in ranges {
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            let address = String(parts[0])
            var v4Address = in_addr()
            var v6Address = in6_addr()
            if inet_pton(AF_INET, address, &v4Address) == 1 {
                let length = try Self.prefixLength(parts, text: text, maximum: 32)
                let mask: UInt32 = length == 0 ? 0 : ~UInt32(0) << UInt32(32 - length)
                v4.append((UInt32(bigEndian: v4Address.s_addr) & mask, mask))
            } else if inet_pton(AF_INET6, address, &v6Address) == 1 {
                let length = try Self.prefixLength(parts, text: text, maximum: 128)
                let mask = Self.mask128(length)
                let value = Self.words(v6Address)
                v6.append(((value.0 & mask.0, value.1 & mask.1), mask))
            } else {
                throw DNSAccessListError(range: text, reason: "not an IPv4 or IPv6 address")
            }
        }
    }

    /// The default list (``defaultRanges``).
    public static func standard() -> DNSAccessList {
        // The default ranges are literals that parse.
        (try? DNSAccessList(defaultRanges)) ?? DNSAccessList(empty: ())
    }

    private init(empty: Void) {
        v4 = []
        v6 = []
    }

    /// Whether a client at `address` may query. IPv4-mapped IPv6 clients are checked
    /// against the IPv4 ranges.
    @inline(__always)
    public func allows(_ address: SocketAddress?) -> Bool {
        switch address {
        case .v4(let ipv4)?:
            return allows(v4: UInt32(bigEndian: ipv4.address.sin_addr.s_addr))
        case .v6(let ipv6)?:
            return allows(v6: Self.words(ipv6.address.sin6_addr))
        default:
            return false
        }
    }

    /// The same decision for a sender address as `recvmmsg` fills it in, without building
    /// a `SocketAddress` (which formats the address as text).
    @inline(__always)
    func allows(_ address: UnsafePointer<sockaddr_storage>) -> Bool {
        switch Int32(address.pointee.ss_family) {
        case AF_INET:
            return allows(v4: UInt32(bigEndian: UnsafeRawPointer(address).load(as: sockaddr_in.self).sin_addr.s_addr))
        case AF_INET6:
            return allows(v6: Self.words(UnsafeRawPointer(address).load(as: sockaddr_in6.self).sin6_addr))
        default:
            return false
        }
    }

    @inline(__always)
    private func allows(v6 value: (UInt64, UInt64)) -> Bool {
        if value.0 == 0, value.1 >> 32 == 0xFFFF { return allows(v4: UInt32(truncatingIfNeeded: value.1)) }
        for range in v6 where value.0 & range.mask.0 == range.network.0 && value.1 & range.mask.1 == range.network.1 { return true }
        return false
    }

    @inline(__always)
    private func allows(v4 address: UInt32) -> Bool {
        for range in v4 where address & range.mask == range.network { return true }
        return false
    }

    private static func prefixLength(_ parts: [Substring], text: String, maximum: Int) throws -> Int {
        guard parts.count == 2 else { return maximum }
        guard let length = Int(parts[1]), (0...maximum).contains(length) else {
            throw DNSAccessListError(range: text, reason: "prefix length must be 0–\(maximum)")
        }
        return length
    }

    private static func mask128(_ length: Int) -> (UInt64, UInt64) {
        let high: UInt64 = length == 0 ? 0 : length >= 64 ? ~0 : ~UInt64(0) << UInt64(64 - length)
        let low: UInt64 = length <= 64 ? 0 : length == 128 ? ~0 : ~UInt64(0) << UInt64(128 - length)
        return (high, low)
    }

    private static func words(_ address: in6_addr) -> (UInt64, UInt64) {
        withUnsafeBytes(of: address) { bytes in
            var high: UInt64 = 0
            var low: UInt64 = 0
            for index in 0..<8 { high = high << 8 | UInt64(bytes[index]) }
            for index in 8..<16 { low = low << 8 | UInt64(bytes[index]) }
            return (high, low)
        }
    }

    public static func == (lhs: DNSAccessList, rhs: DNSAccessList) -> Bool {
        lhs.v4.elementsEqual(rhs.v4, by: { $0.network == $1.network && $0.mask == $1.mask })
            && lhs.v6.elementsEqual(rhs.v6, by: { $0.network == $1.network && $0.mask == $1.mask })
    }
}

/// A client range that could not be parsed.
public struct DNSAccessListError: Error, CustomStringConvertible {
    public var range: String
    public var reason: String

    public var description: String { "--allow \(range): \(reason); expected a CIDR range such as 10.0.0.0/8 or fd00::/8" }
}
