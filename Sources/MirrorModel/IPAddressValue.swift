#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IP address as 17 bytes of plain value: what the validator and the store compare and
/// hash instead of canonical strings.
///
/// Two texts parse to equal values exactly when ``IPAddressText/canonical(_:)`` gives them
/// the same spelling (the family is part of the value, so `10.0.0.1` and `::ffff:10.0.0.1`
/// stay distinct, as their canonical texts do). Building one allocates nothing for IPv4,
/// which is what a 100k-service state is made of.
struct IPAddressValue: Hashable, Sendable {
    /// The address, big-endian, IPv4 in the low 32 bits of `low`.
    var high: UInt64
    var low: UInt64
    var family: IPAddressText.Family

    init?(_ text: String) {
        if let v4 = IPAddressText.v4Value(text) {
            self.init(v4: v4)
            return
        }
        var address = in6_addr()
        guard text.utf8.count <= 45, inet_pton(AF_INET6, text, &address) == 1 else { return nil }
        self.init(v6: address)
    }

    init(v4: UInt32) {
        high = 0
        low = UInt64(v4)
        family = .v4
    }

    init(v6 address: in6_addr) {
        var high: UInt64 = 0, low: UInt64 = 0
        withUnsafeBytes(of: address) { bytes in
            for i in 0..<8 { high = high << 8 | UInt64(bytes[i]) }
            for i in 8..<16 { low = low << 8 | UInt64(bytes[i]) }
        }
        self.high = high
        self.low = low
        family = .v6
    }

    /// The canonical spelling, as ``IPAddressText/canonical(_:)`` gives it. Only built for
    /// messages, so it may allocate.
    var text: String {
        switch family {
        case .v4:
            let v = UInt32(truncatingIfNeeded: low)
            return "\(v >> 24).\(v >> 16 & 255).\(v >> 8 & 255).\(v & 255)"
        case .v6:
            var address = in6_addr()
            withUnsafeMutableBytes(of: &address) { bytes in
                for i in 0..<8 { bytes[i] = UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64(i))) }
                for i in 0..<8 { bytes[8 + i] = UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64(i))) }
            }
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
            return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        }
    }
}

/// One `ClusterIP proto port` a service listens on; two services may not share one.
struct ServiceSlot: Hashable, Sendable {
    var ip: IPAddressValue
    var port: Int
    var proto: L4Protocol

    /// `10.0.0.1:80/TCP`, as issues name a slot.
    var text: String { "\(ip.text):\(port)/\(proto.rawValue)" }
}
