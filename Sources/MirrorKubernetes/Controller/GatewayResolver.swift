import Dispatch
import Foundation
import MirrorModel
#if canImport(Glibc)
import Glibc
#endif

/// Turns a Link's `gatewayAddress` entries into IP addresses. Entries that are addresses
/// stay as they are; names are looked up (every address they have is used: a gateway
/// behind a DNS name with several records is several gateways).
public protocol GatewayResolver: Sendable {
    func addresses(of name: String) async throws -> [String]
}

/// The system's resolver (getaddrinfo: /etc/hosts, then DNS), on a thread of its own since
/// the call blocks.
public struct SystemGatewayResolver: GatewayResolver {
    public init() {}

    public func addresses(of name: String) async throws -> [String] {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try Self.lookUp(name) })
            }
        }
    }

    private static func lookUp(_ name: String) throws -> [String] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(name, nil, &hints, &list)
        guard status == 0, let first = list else {
            throw GatewayResolutionError(name: name, reason: String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(first) }
        var found: [String] = []
        var next: UnsafeMutablePointer<addrinfo>? = first
        while let entry = next {
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if let address = entry.pointee.ai_addr,
               getnameinfo(address, entry.pointee.ai_addrlen, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 {
                let text = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if let canonical = IPAddressText.canonical(text)?.text, !found.contains(canonical) { found.append(canonical) }
            }
            next = entry.pointee.ai_next
        }
        return found
    }
}

public struct GatewayResolutionError: Error, CustomStringConvertible {
    public var name: String
    public var reason: String
    public var description: String { "cannot resolve \(name): \(reason)" }
}
