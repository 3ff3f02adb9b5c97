import Foundation
import NIOCore
import MirrorModel

/// One event of the exports stream (`GET /v1/exports`), which gateways follow. The grammar is
/// the watch stream's (docs/feed-protocol.md): `snapshot` carries `exports` instead of `state`,
/// and there are no deltas: each change of the document is a new snapshot.
public enum ExportsEvent: Sendable, Equatable {
    case snapshot(epoch: String, revision: UInt64, exports: ExportsDocument)
    case resumed(epoch: String, revision: UInt64)
    case bookmark(revision: UInt64)

    /// The request path of the stream.
    public static let path = "/v1/exports"

    /// The event framed as one HTTP/1.1 chunk, like ``FeedEvent/encodedChunk(allocator:)``.
    public func encodedChunk(allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> ByteBuffer {
        switch self {
        case let .resumed(epoch, revision): return try FeedEvent.resumed(epoch: epoch, revision: revision).encodedChunk(allocator: allocator)
        case let .bookmark(revision): return try FeedEvent.bookmark(revision: revision).encodedChunk(allocator: allocator)
        case let .snapshot(epoch, revision, exports):
            // `type` and `revision` first, like every event of the watch stream.
            let head = "{\"type\":\"snapshot\",\"revision\":\(revision),\"epoch\":" + String(decoding: try JSONEncoder().encode(epoch), as: UTF8.self)
            let line = Data(head.utf8) + Data(",\"exports\":".utf8) + (try exports.jsonData()) + Data("}\n".utf8)
            var chunk = allocator.buffer(capacity: line.count + 12)
            chunk.writeString(String(line.count, radix: 16) + "\r\n")
            chunk.writeBytes(line)
            chunk.writeString("\r\n")
            return chunk
        }
    }

    private struct Header: Codable {
        var type: String
        var revision: UInt64
        var epoch: String?
        var exports: ExportsDocument?
    }

    /// Decodes one line (without its `\n`). The document is decoded but not validated: the
    /// gateway validates it against its own gateway port range.
    /// - Throws: ``FeedProtocolError/malformedEvent(_:)`` naming what is wrong.
    public static func decode(line: ByteBuffer) throws -> ExportsEvent {
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: Data(line.readableBytesView))
        } catch {
            throw FeedProtocolError.malformedEvent("exports event: \(error)")
        }
        switch header.type {
        case "snapshot":
            guard let epoch = header.epoch, let exports = header.exports else {
                throw FeedProtocolError.malformedEvent("exports snapshot without epoch or exports")
            }
            return .snapshot(epoch: epoch, revision: header.revision, exports: exports)
        case "resume":
            guard let epoch = header.epoch else { throw FeedProtocolError.malformedEvent("resume without epoch") }
            return .resumed(epoch: epoch, revision: header.revision)
        case "bookmark":
            return .bookmark(revision: header.revision)
        default:
            throw FeedProtocolError.malformedEvent("unknown exports event type \(header.type)")
        }
    }
}
