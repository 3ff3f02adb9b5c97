import AsyncHTTPClient
import Foundation
import NIOCore

/// One event of a watch, as the API sends it.
public enum KubeWatchEvent<Object: KubeObject>: Sendable {
    case added(Object)
    case modified(Object)
    case deleted(Object)
    /// Nothing of interest changed up to this version: resume from it.
    case bookmark(resourceVersion: String)
    /// A failure reported inside the stream (other than 410, which ends it as
    /// ``KubeError/expired(_:)``); the server closes the watch after it.
    case error(KubeStatus)

    /// The version this event brings the watcher to.
    public var resourceVersion: String? {
        switch self {
        case .added(let object), .modified(let object), .deleted(let object): object.metadata.resourceVersion
        case .bookmark(let version): version
        case .error: nil
        }
    }
}

extension KubeWatchEvent: Equatable where Object: Equatable {}

public struct WatchOptions: Sendable {
    public var labelSelector: String?
    public var fieldSelector: String?
    /// Changes after this version; nil (or "0") starts with an ADDED event per existing object.
    public var resourceVersion: String?
    /// The server ends the watch after this long; the client gives up `grace` later if it
    /// hears nothing more (a connection that died without a reset).
    public var timeoutSeconds: Int = 300
    public var grace: Duration = .seconds(30)
    public var allowBookmarks = true

    public init(labelSelector: String? = nil, resourceVersion: String? = nil, timeoutSeconds: Int = 300) {
        self.labelSelector = labelSelector
        self.resourceVersion = resourceVersion
        self.timeoutSeconds = timeoutSeconds
    }
}

extension KubeClient {
    /// Watches a collection. The sequence ends when the server ends the watch (its timeout),
    /// and throws ``KubeError/expired(_:)`` for a version the server no longer has (HTTP 410
    /// or an ERROR event with code 410), ``KubeError/transport(_:)`` when the stream is cut
    /// (a partial last line is never decoded), ``KubeError/timedOut(_:)`` when it goes silent.
    /// Ending the iteration cancels the request.
    public func watch<Object: KubeObject>(_ type: Object.Type, namespace: String? = nil,
                                          options watch: WatchOptions) -> AsyncThrowingStream<KubeWatchEvent<Object>, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: KubeWatchEvent<Object>.self)
        let task = Task {
            do {
                try await self.runWatch(namespace: namespace, options: watch, into: continuation)
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    private func runWatch<Object: KubeObject>(namespace: String?, options watch: WatchOptions,
                                              into continuation: AsyncThrowingStream<KubeWatchEvent<Object>, any Error>.Continuation) async throws {
        var query = [("watch", "true")]
        if let selector = watch.labelSelector, !selector.isEmpty { query.append(("labelSelector", selector)) }
        if let selector = watch.fieldSelector, !selector.isEmpty { query.append(("fieldSelector", selector)) }
        if let version = watch.resourceVersion { query.append(("resourceVersion", version)) }
        if watch.allowBookmarks { query.append(("allowWatchBookmarks", "true")) }
        query.append(("timeoutSeconds", String(watch.timeoutSeconds)))
        let url = try url(Object.resource.collectionPath(namespace: namespace), query: query)
        let what = "watch \(url)"
        let request = try makeRequest(.GET, url)
        let limit = Duration.seconds(watch.timeoutSeconds) + watch.grace
        let maxLine = options.maxBodyBytes
        try await withTimeout(limit, what + ": silent past its timeoutSeconds") {
            let response: HTTPClientResponse
            do {
                response = try await self.http.execute(request, timeout: .nanoseconds(self.options.requestTimeout.nanoseconds))
            } catch {
                throw Self.transportError(error, what)
            }
            guard response.status == .ok else {
                let body = (try? await response.body.collect(upTo: 1 << 20)) ?? ByteBuffer()
                throw Self.failure(status: response.status, body: body)
            }
            var lines = WatchLineSplitter(maxLine: maxLine)
            do {
                for try await buffer in response.body {
                    for line in try lines.append(buffer) {
                        let event = try Self.decodeEvent(line, as: Object.self, what: what)
                        if case .error(let status) = event, KubeError.from(status: status).isExpired {
                            throw KubeError.expired(status)
                        }
                        continuation.yield(event)
                    }
                }
            } catch {
                throw Self.transportError(error, what + " was cut")
            }
            if lines.hasPartialLine { throw KubeError.transport("\(what) ended in the middle of an event") }
        }
    }

    static func decodeEvent<Object: KubeObject>(_ line: Data, as: Object.Type, what: String) throws -> KubeWatchEvent<Object> {
        do {
            return try JSONDecoder().decode(WireEvent<Object>.self, from: line).event
        } catch {
            throw KubeError.decoding("\(what): \(describe(error))")
        }
    }
}

extension KubeError {
    var isExpired: Bool {
        if case .expired = self { return true }
        return false
    }
}

/// `{"type": ..., "object": ...}`, decoded in one pass: the object's shape depends on the type.
private struct WireEvent<Object: KubeObject>: Decodable {
    let event: KubeWatchEvent<Object>

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        let type = try container.decode(String.self, forKey: .type)
        switch type {
        case "ADDED": event = .added(try container.decode(Object.self, forKey: .object))
        case "MODIFIED": event = .modified(try container.decode(Object.self, forKey: .object))
        case "DELETED": event = .deleted(try container.decode(Object.self, forKey: .object))
        case "BOOKMARK":
            let marker = try container.decode(Bookmark.self, forKey: .object)
            event = .bookmark(resourceVersion: marker.metadata.resourceVersion ?? "")
        case "ERROR": event = .error(try container.decode(KubeStatus.self, forKey: .object))
        default:
            throw DecodingError.dataCorruptedError(forKey: .type, in: container, debugDescription: "unknown event type \(type)")
        }
    }

    private struct Bookmark: Decodable { var metadata: ObjectMeta }
    private enum Keys: String, CodingKey { case type, object }
}

/// Cuts a byte stream into newline-terminated lines, keeping an unfinished line for the
/// next buffer (a watch sends one JSON object per line, split anywhere by the transport).
struct WatchLineSplitter {
    let maxLine: Int
    private var pending: [UInt8] = []

    init(maxLine: Int) { self.maxLine = maxLine }

    var hasPartialLine: Bool { pending.contains { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\r") } }

    mutating func append(_ buffer: ByteBuffer) throws -> [Data] {
        var lines: [Data] = []
        buffer.withUnsafeReadableBytes { bytes in
            var start = 0
            for index in bytes.indices where bytes[index] == UInt8(ascii: "\n") {
                pending.append(contentsOf: bytes[start..<index])
                if pending.contains(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\r") }) { lines.append(Data(pending)) }
                pending.removeAll(keepingCapacity: true)
                start = index + 1
            }
            pending.append(contentsOf: bytes[start...])
        }
        if pending.count > maxLine { throw KubeError.decoding("a watch event longer than \(maxLine) bytes") }
        return lines
    }
}
