import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL

public struct KubeClientOptions: Sendable {
    /// Until the response head of any request; unary requests also bound reading the body.
    public var requestTimeout: Duration = .seconds(30)
    public var connectTimeout: Duration = .seconds(10)
    /// `http://` servers are refused unless this is set: plain HTTP is for test servers.
    public var allowPlainHTTP = false
    public var userAgent = "mirror-agent"
    /// The largest response body (a list page) or watch line accepted.
    public var maxBodyBytes = 64 << 20

    public init() {}
}

/// One page-at-a-time list request.
public struct ListOptions: Sendable {
    public var labelSelector: String?
    public var fieldSelector: String?
    /// Page size; nil asks for everything at once.
    public var limit: Int?
    public var continueToken: String?

    public init(labelSelector: String? = nil, fieldSelector: String? = nil, limit: Int? = nil, continueToken: String? = nil) {
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
        self.limit = limit
        self.continueToken = continueToken
    }
}

/// A client of one API server (one cluster), over HTTP/1.1 or HTTP/2 with its TLS settings.
///
/// Requests follow the API conventions: JSON bodies, `Status` objects for failures (mapped to
/// ``KubeError``), `resourceVersion` for optimistic concurrency. Call ``shutdown()`` when done.
public final class KubeClient: Sendable {
    public let connection: KubeConnection
    let options: KubeClientOptions
    let http: HTTPClient
    let logger: Logger

    public init(connection: KubeConnection, options: KubeClientOptions = KubeClientOptions(),
                logger: Logger = Logger(label: "mirror-kubernetes")) throws {
        switch connection.server.scheme {
        case "https": break
        case "http" where options.allowPlainHTTP: break
        default:
            throw KubeConfigError(source: connection.origin, issues: [
                "server \(connection.server.absoluteString): only https is allowed (plain http is for test servers)"])
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        if let roots = connection.trustRoots { tls.trustRoots = .certificates(roots) }
        if connection.insecureSkipTLSVerify { tls.certificateVerification = .none }
        if let key = connection.clientKey {
            tls.certificateChain = connection.clientCertificateChain.map { .certificate($0) }
            tls.privateKey = .privateKey(key)
        }
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: tls, redirectConfiguration: .disallow,
            timeout: HTTPClient.Configuration.Timeout(connect: .nanoseconds(options.connectTimeout.nanoseconds)))
        configuration.connectionPool.idleTimeout = .seconds(90)
        self.connection = connection
        self.options = options
        self.logger = logger
        self.http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    public func shutdown() async throws {
        try await http.shutdown()
    }

    // MARK: Reads

    public func get<Object: KubeObject>(_ type: Object.Type, namespace: String?, name: String) async throws -> Object {
        try await send(.GET, Object.resource.objectPath(namespace: namespace, name: name), as: Object.self)
    }

    /// One page; `metadata.continue` in the result asks for the next.
    public func list<Object: KubeObject>(_ type: Object.Type, namespace: String? = nil,
                                         options list: ListOptions = ListOptions()) async throws -> KubeList<Object> {
        var query: [(String, String)] = []
        if let selector = list.labelSelector, !selector.isEmpty { query.append(("labelSelector", selector)) }
        if let selector = list.fieldSelector, !selector.isEmpty { query.append(("fieldSelector", selector)) }
        if let limit = list.limit { query.append(("limit", String(limit))) }
        if let token = list.continueToken { query.append(("continue", token)) }
        return try await send(.GET, Object.resource.collectionPath(namespace: namespace), query: query, as: KubeList<Object>.self)
    }

    /// Every page, as one consistent list at the first page's resourceVersion. An expired
    /// continue token (410, the list took longer than the server keeps history) throws
    /// ``KubeError/expired(_:)``: start again.
    public func listAll<Object: KubeObject>(_ type: Object.Type, namespace: String? = nil, labelSelector: String? = nil,
                                            pageSize: Int? = 500) async throws -> KubeList<Object> {
        var options = ListOptions(labelSelector: labelSelector, limit: pageSize)
        var page = try await list(type, namespace: namespace, options: options)
        let resourceVersion = page.metadata.resourceVersion
        var items = page.items
        while let token = page.metadata.continue, !token.isEmpty {
            options.continueToken = token
            page = try await list(type, namespace: namespace, options: options)
            items += page.items
        }
        return KubeList(resourceVersion: resourceVersion, items: items)
    }

    // MARK: Writes

    /// Creates `object` in its `metadata.namespace`. A name in use throws ``KubeError/alreadyExists(_:)``.
    public func create<Object: KubeObject>(_ object: Object) async throws -> Object {
        try await send(.POST, Object.resource.collectionPath(namespace: object.metadata.namespace),
                       body: Envelope(object), as: Object.self)
    }

    /// Replaces the object (PUT). With `metadata.resourceVersion` set, the server refuses a
    /// stale copy with ``KubeError/conflict(_:)``; fields not modelled by `Object` are dropped,
    /// so update only objects this agent owns.
    public func update<Object: KubeObject>(_ object: Object) async throws -> Object {
        try await send(.PUT, Object.resource.objectPath(namespace: object.metadata.namespace, name: object.metadata.name),
                       body: Envelope(object), as: Object.self)
    }

    /// Replaces the object's status subresource (PUT …/status): only `.status` changes.
    /// A resource without one answers ``KubeError/notFound(_:)``.
    public func updateStatus<Object: KubeObject>(_ object: Object) async throws -> Object {
        try await send(.PUT, Object.resource.objectPath(namespace: object.metadata.namespace, name: object.metadata.name) + "/status",
                       body: Envelope(object), as: Object.self)
    }

    /// Deletes an object; with `resourceVersion`, only that version of it (409 otherwise).
    public func delete<Object: KubeObject>(_ type: Object.Type, namespace: String?, name: String,
                                           resourceVersion: String? = nil) async throws {
        let options = resourceVersion.map { DeleteOptions(preconditions: .init(resourceVersion: $0)) }
        _ = try await send(.DELETE, Object.resource.objectPath(namespace: namespace, name: name), body: options,
                           as: Ignored.self)
    }

    // MARK: The exchange

    func send<Response: Decodable>(_ method: HTTPMethod, _ path: String, query: [(String, String)] = [],
                                   body: (some Encodable)? = Optional<Ignored>.none, as: Response.Type) async throws -> Response {
        let url = try url(path, query: query)
        var request = try makeRequest(method, url)
        if let body {
            let data: Data
            do {
                data = try JSONEncoder().encode(body)
            } catch {
                throw KubeError.decoding("cannot encode the \(method) body for \(url): \(error)")
            }
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: data))
        }
        let bytes: ByteBuffer
        let status: HTTPResponseStatus
        let prepared = request
        do {
            (status, bytes) = try await withTimeout(options.requestTimeout, "\(method) \(url)") {
                let response = try await self.http.execute(prepared, timeout: .nanoseconds(self.options.requestTimeout.nanoseconds))
                return (response.status, try await response.body.collect(upTo: self.options.maxBodyBytes))
            }
        } catch {
            throw Self.transportError(error, "\(method) \(url)")
        }
        guard (200..<300).contains(status.code) else { throw Self.failure(status: status, body: bytes) }
        if Response.self == Ignored.self, let ignored = Ignored() as? Response { return ignored }
        do {
            return try JSONDecoder().decode(Response.self, from: Data(bytes.readableBytesView))
        } catch {
            throw KubeError.decoding("\(method) \(url): \(Self.describe(error))")
        }
    }

    func url(_ path: String, query: [(String, String)]) throws -> URL {
        guard var components = URLComponents(url: connection.server, resolvingAgainstBaseURL: false) else {
            throw KubeError.transport("bad server URL \(connection.server)")
        }
        components.path = components.path + path
        if !query.isEmpty {
            components.percentEncodedQueryItems = query.map {
                URLQueryItem(name: $0.0, value: $0.1.addingPercentEncoding(withAllowedCharacters: .kubeQueryValue))
            }
        }
        guard let url = components.url else { throw KubeError.transport("cannot build a URL for \(path)") }
        return url
    }

    func makeRequest(_ method: HTTPMethod, _ url: URL) throws -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: options.userAgent)
        if let token = connection.token {
            do {
                request.headers.add(name: "Authorization", value: "Bearer \(try token.current())")
            } catch {
                throw KubeError.unauthorized(KubeStatus(message: "\(error)", reason: "NoToken", code: 401))
            }
        }
        return request
    }

    /// A non-success response as its ``KubeError``: the body's `Status` when it has one.
    static func failure(status: HTTPResponseStatus, body: ByteBuffer) -> KubeError {
        let data = Data(body.readableBytesView)
        if var decoded = try? JSONDecoder().decode(StatusProbe.self, from: data), decoded.kind == "Status" {
            if decoded.status.code == nil { decoded.status.code = Int(status.code) }
            return KubeError.from(status: decoded.status)
        }
        let text = String(decoding: data.prefix(200), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return KubeError.from(status: KubeStatus(message: text.isEmpty ? nil : text, reason: status.reasonPhrase,
                                                 code: Int(status.code)))
    }

    static func transportError(_ error: any Error, _ what: String) -> KubeError {
        if let error = error as? KubeError { return error }
        if let error = error as? HTTPClientError, error == .deadlineExceeded || error == .readTimeout {
            return .timedOut(what)
        }
        return .transport("\(what): \(error)")
    }

    static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        let (context, prefix): (DecodingError.Context?, String) = switch error {
        case .typeMismatch(_, let context): (context, "wrong type")
        case .valueNotFound(_, let context): (context, "missing value")
        case .keyNotFound(let key, let context): (context, "missing field \(key.stringValue)")
        case .dataCorrupted(let context): (context, "invalid")
        @unknown default: (nil, "\(error)")
        }
        guard let context else { return prefix }
        // items[3].spec.ports: wrong type: …
        var path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        if path.hasPrefix(".") { path.removeFirst() }
        return (path.isEmpty ? "" : path + ": ") + prefix + ": " + context.debugDescription
    }
}

/// Runs `operation`, or throws ``KubeError/timedOut(_:)`` after `limit` (cancelling it).
func withTimeout<Value: Sendable>(_ limit: Duration, _ what: String,
                                  _ operation: @escaping @Sendable () async throws -> Value) async throws -> Value {
    try await withThrowingTaskGroup(of: Value?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw KubeError.timedOut(what) }
        return value
    }
}

/// An object with its `apiVersion` and `kind`, which the API wants in request bodies but
/// list items lack (so the object types do not store them).
struct Envelope<Object: KubeObject>: Encodable {
    let object: Object
    init(_ object: Object) { self.object = object }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: TypeKeys.self)
        try container.encode(Object.resource.apiVersion, forKey: .apiVersion)
        try container.encode(Object.resource.kind, forKey: .kind)
        try object.encode(to: encoder)
    }

    private enum TypeKeys: String, CodingKey { case apiVersion, kind }
}

struct DeleteOptions: Encodable {
    struct Preconditions: Encodable { var resourceVersion: String }
    var apiVersion = "v1"
    var kind = "DeleteOptions"
    var preconditions: Preconditions
}

/// A response body nobody reads.
struct Ignored: Codable {}

private struct StatusProbe: Decodable {
    var kind: String?
    var status: KubeStatus

    init(from decoder: any Decoder) throws {
        kind = try decoder.container(keyedBy: Keys.self).decodeIfPresent(String.self, forKey: .kind)
        status = try KubeStatus(from: decoder)
    }

    private enum Keys: String, CodingKey { case kind }
}

extension CharacterSet {
    /// Query values (selectors hold `=`, `,`, `!`, parentheses and spaces): escape all but the unreserved.
    static let kubeQueryValue: CharacterSet = {
        CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
    }()
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
