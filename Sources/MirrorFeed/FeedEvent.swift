import Foundation
import NIOCore
import MirrorModel

/// One line of the mirror feed's watch stream (see docs/feed-protocol.md).
///
/// A watch starts with a ``snapshot`` (the whole state) or a ``resumed`` marker (the client's
/// revision is still in the server's history), continues with one ``delta`` per change, each
/// exactly one revision after the previous, and carries ``bookmark``s so that a silent
/// connection can be told from a quiet feed. A server may send a new ``snapshot`` at any time
/// when a change cannot be expressed as deltas (for example a new cluster domain).
public enum FeedEvent: Equatable, Sendable {
    /// The whole state at `revision`, from the server instance `epoch`.
    case snapshot(epoch: String, revision: UInt64, state: MirrorState)
    /// The server accepted `since=revision`: deltas after `revision` follow.
    case resumed(epoch: String, revision: UInt64)
    /// One change, produced at `revision` (always the previous revision + 1).
    case delta(revision: UInt64, MirrorDelta)
    /// Nothing changed; the server is at `revision`.
    case bookmark(revision: UInt64)

    /// The revision the event carries.
    public var revision: UInt64 {
        switch self {
        case .snapshot(_, let revision, _), .resumed(_, let revision), .delta(let revision, _), .bookmark(let revision):
            revision
        }
    }

    /// The `type` field on the wire.
    public var typeName: String {
        switch self {
        case .snapshot: "snapshot"
        case .resumed: "resume"
        case .bookmark: "bookmark"
        case .delta(_, let delta):
            switch delta {
            case .upsertCluster: "upsertCluster"
            case .deleteCluster: "deleteCluster"
            case .upsertService: "upsertService"
            case .deleteService: "deleteService"
            case .upsertPolicy: "upsertPolicy"
            case .deletePolicy: "deletePolicy"
            }
        }
    }
}

// MARK: wire form

extension FeedEvent: Codable {
    private enum CodingKeys: String, CodingKey {
        case type, revision, epoch, state, cluster, service, name, namespace, mirroredName, policy
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .type)
        let revision = try c.decode(UInt64.self, forKey: .revision)
        switch type {
        case "snapshot":
            self = .snapshot(epoch: try c.decode(String.self, forKey: .epoch), revision: revision,
                             state: try c.decode(MirrorState.self, forKey: .state))
        case "resume":
            self = .resumed(epoch: try c.decode(String.self, forKey: .epoch), revision: revision)
        case "bookmark":
            self = .bookmark(revision: revision)
        case "upsertCluster":
            self = .delta(revision: revision, .upsertCluster(try c.decode(Cluster.self, forKey: .cluster)))
        case "deleteCluster":
            self = .delta(revision: revision, .deleteCluster(name: try c.decode(String.self, forKey: .name)))
        case "upsertService":
            self = .delta(revision: revision, .upsertService(try c.decode(MirroredService.self, forKey: .service)))
        case "deleteService":
            let key = ServiceKey(namespace: try c.decode(String.self, forKey: .namespace),
                                 mirroredName: try c.decode(String.self, forKey: .mirroredName))
            self = .delta(revision: revision, .deleteService(key))
        case "upsertPolicy":
            self = .delta(revision: revision, .upsertPolicy(try c.decode(TrafficPolicy.self, forKey: .policy)))
        case "deletePolicy":
            let key = PolicyKey(namespace: try c.decode(String.self, forKey: .namespace), name: try c.decode(String.self, forKey: .name))
            self = .delta(revision: revision, .deletePolicy(key))
        default:
            throw DecodingError.dataCorruptedError(forKey: .type, in: c, debugDescription: "unknown event type \"\(type)\"")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(typeName, forKey: .type)
        try c.encode(revision, forKey: .revision)
        switch self {
        case .snapshot(let epoch, _, let state):
            try c.encode(epoch, forKey: .epoch)
            try c.encode(state, forKey: .state)
        case .resumed(let epoch, _):
            try c.encode(epoch, forKey: .epoch)
        case .bookmark:
            break
        case .delta(_, let delta):
            switch delta {
            case .upsertCluster(let cluster): try c.encode(cluster, forKey: .cluster)
            case .deleteCluster(let name): try c.encode(name, forKey: .name)
            case .upsertService(let service): try c.encode(service, forKey: .service)
            case .deleteService(let key):
                try c.encode(key.namespace, forKey: .namespace)
                try c.encode(key.mirroredName, forKey: .mirroredName)
            case .upsertPolicy(let policy): try c.encode(policy, forKey: .policy)
            case .deletePolicy(let key):
                try c.encode(key.namespace, forKey: .namespace)
                try c.encode(key.name, forKey: .name)
            }
        }
    }

    /// The event as one line of the stream: compact JSON, `type` and `revision` first (easy
    /// to read with curl), and a trailing `\n`. Written by ``FeedJSONWriter`` (the same JSON
    /// as the `Codable` form, without `JSONEncoder`'s cost: a large snapshot is encoded for
    /// every change that new watchers need).
    public func encodedLine(allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> ByteBuffer {
        var writer = FeedJSONWriter(capacity: 64, allocator: allocator)
        writer.raw("{\"type\":")
        writer.string(typeName)
        writer.raw(",\"revision\":")
        writer.unsigned(revision)
        switch self {
        case .snapshot(let epoch, _, let state):
            writer.raw(",\"epoch\":")
            writer.string(epoch)
            writer.raw(",\"state\":")
            writer.write(state)
        case .resumed(let epoch, _):
            writer.raw(",\"epoch\":")
            writer.string(epoch)
        case .bookmark:
            break
        case .delta(_, let delta):
            switch delta {
            case .upsertCluster(let cluster):
                writer.raw(",\"cluster\":")
                writer.write(cluster)
            case .deleteCluster(let name):
                writer.raw(",\"name\":")
                writer.string(name)
            case .upsertService(let service):
                writer.raw(",\"service\":")
                writer.write(service)
            case .deleteService(let key):
                writer.raw(",\"namespace\":")
                writer.string(key.namespace)
                writer.raw(",\"mirroredName\":")
                writer.string(key.mirroredName)
            case .upsertPolicy(let policy):
                writer.raw(",\"policy\":")
                writer.write(policy)
            case .deletePolicy(let key):
                writer.raw(",\"namespace\":")
                writer.string(key.namespace)
                writer.raw(",\"name\":")
                writer.string(key.name)
            }
        }
        writer.raw("}\n")
        return writer.buffer
    }

    /// The event's line framed as one HTTP/1.1 chunk (`<hex length>\r\n<line>\r\n`), so the
    /// server frames each event once and writes the same bytes to every watcher.
    public func encodedChunk(allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> ByteBuffer {
        var line = try encodedLine(allocator: allocator)
        var chunk = allocator.buffer(capacity: line.readableBytes + 12)
        chunk.writeString(String(line.readableBytes, radix: 16) + "\r\n")
        chunk.writeBuffer(&line)
        chunk.writeString("\r\n")
        return chunk
    }

    /// One decoder for every line (it holds no per-call state; making one per line costs).
    private static let lineDecoder = JSONDecoder()

    /// Decodes one line (without its `\n`).
    ///
    /// Lines in the form the server writes are read in place (``decodeFast(_:)``, ~10× cheaper
    /// than `JSONDecoder`, and every agent decodes every delta); anything else, including
    /// every malformed line, goes through `JSONDecoder`.
    /// - Throws: ``FeedProtocolError/malformedEvent(_:)`` naming what is wrong.
    public static func decode(line: ByteBuffer) throws -> FeedEvent {
        if let event = line.withUnsafeReadableBytes({ try? decodeFast($0) }) { return event }
        return try decodeWithFoundation(line: line)
    }

    /// The reference decoder (`JSONDecoder`), for lines outside the fast path's subset; public
    /// so that benchmarks can compare the two.
    public static func decodeWithFoundation(line: ByteBuffer) throws -> FeedEvent {
        do {
            return try lineDecoder.decode(FeedEvent.self, from: Data(line.readableBytesView))
        } catch let error as DecodingError {
            throw FeedProtocolError.malformedEvent(error.feedSummary)
        } catch {
            throw FeedProtocolError.malformedEvent("\(error)")
        }
    }
}

extension DecodingError {
    /// A one-line reason with the JSON path, for logs: `at service.ports.0.port: expected Int`.
    var feedSummary: String {
        func path(_ context: Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
            return keys.isEmpty ? "" : "at \(keys.joined(separator: ".")): "
        }
        switch self {
        case .typeMismatch(let type, let context): return "\(path(context))expected \(type)"
        case .valueNotFound(let type, let context): return "\(path(context))missing \(type) value"
        case .keyNotFound(let key, let context): return "\(path(context))missing field \"\(key.stringValue)\""
        case .dataCorrupted(let context): return "\(path(context))\(context.debugDescription)"
        @unknown default: return "\(self)"
        }
    }
}

/// The other side broke the feed protocol; the connection is dropped and nothing of the
/// offending event is applied.
public enum FeedProtocolError: Error, Equatable, CustomStringConvertible {
    /// A line is not a valid event (bad JSON, missing field, unknown type).
    case malformedEvent(String)
    /// A line grew past the limit without a newline.
    case lineTooLong(limit: Int)
    /// An event arrived that the stream's state does not allow (e.g. a delta before the snapshot).
    case unexpected(String)
    /// A delta's revision is not exactly one after the last applied revision.
    case outOfOrder(expected: UInt64, received: UInt64, event: String)
    /// A `resume` names another server instance or another revision than the client asked for.
    case badResume(String)

    public var description: String {
        switch self {
        case .malformedEvent(let reason): "malformed feed event: \(reason)"
        case .lineTooLong(let limit): "feed event longer than \(limit) bytes; raise the client's line limit if the state is that large"
        case .unexpected(let reason): "unexpected feed event: \(reason)"
        case let .outOfOrder(expected, received, event): "out-of-order feed event \(event) at revision \(received); expected revision \(expected)"
        case .badResume(let reason): "bad resume: \(reason)"
        }
    }
}
