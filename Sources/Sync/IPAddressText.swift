#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Textual IP addresses as the mirror state carries them, checked and put in canonical form.
public enum IPAddressText {
    public enum Family: Sendable { case v4, v6 }

    /// The canonical spelling of `text` (so `10.0.0.01`-style variants and `::FFFF:…` compare
    /// equal) and its family, or `nil` when `text` is not an IP address.
    public static func canonical(_ text: String) -> (text: String, family: Family)? {
        if let bytes = v4Bytes(text) {
            return (bytes.map(String.init).joined(separator: "."), .v4)
        }
        var address = in6_addr()
        guard inet_pton(AF_INET6, text, &address) == 1 else { return nil }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)) != nil else { return nil }
        let canonical = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return (canonical, .v6)
    }

    /// Strict dotted-quad parsing: four decimal parts 0–255, no leading zeros.
    static func v4Bytes(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), part.allSatisfy(\.isNumber),
                  !(part.count > 1 && part.first == "0"), let value = UInt8(part) else { return nil }
            bytes.append(value)
        }
        return bytes
    }
}
