import Foundation
import MirrorModel

/// Where a feed client connects: `https://feed.mirror.svc:8443` or `http://127.0.0.1:8080`.
public struct FeedEndpoint: Sendable, Equatable, CustomStringConvertible {
    public enum Scheme: String, Sendable {
        case http, https
    }

    public var scheme: Scheme
    /// A DNS name or an IP literal (without brackets).
    public var host: String
    public var port: Int

    /// Parses a feed URL. A path, if any, is ignored: the watch path is fixed by the protocol.
    /// - Throws: ``FeedEndpointError`` saying what is wrong.
    public init(url text: String) throws {
        guard let components = URLComponents(string: text), let schemeText = components.scheme?.lowercased() else {
            throw FeedEndpointError(url: text, reason: "not a URL; expected https://HOST:PORT or http://HOST:PORT")
        }
        guard let scheme = Scheme(rawValue: schemeText) else {
            throw FeedEndpointError(url: text, reason: "scheme \(schemeText) is not served; use https:// (or http:// with --insecure)")
        }
        guard var host = components.host, !host.isEmpty else {
            throw FeedEndpointError(url: text, reason: "no host")
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let port = components.port ?? (scheme == .https ? 443 : 80)
        guard (1...65535).contains(port) else {
            throw FeedEndpointError(url: text, reason: "port \(port) is out of range 1-65535")
        }
        self.scheme = scheme
        self.host = host
        self.port = port
    }

    /// Whether `host` is an IP literal (TLS then checks the certificate's IP SAN, not a name).
    public var hostIsIPAddress: Bool { IPAddressText.canonical(host) != nil }

    /// `host:port` as an HTTP `Host` header says it.
    public var authority: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public var description: String { "\(scheme.rawValue)://\(authority)" }
}

/// A feed URL could not be used.
public struct FeedEndpointError: Error, CustomStringConvertible {
    public var url: String
    public var reason: String
    public var description: String { "feed URL \(url): \(reason)" }
}
