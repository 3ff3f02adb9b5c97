import Foundation
import NIOCore
#if canImport(Glibc)
import Glibc
import MirrorModel
#elseif canImport(Darwin)
import Darwin
#endif

/// The last state a feed client applied, kept on local disk so that an agent restarting while
/// the feed is unreachable serves it (DNS and rules) instead of nothing, and resumes from its
/// revision once the feed is back.
///
/// Written atomically: a temporary file in the same directory, fsync, rename over the old
/// file, fsync of the directory. A crash leaves either the old or the new file, never a mix.
public struct FeedStateFile: Sendable {
    /// The file's name inside the state directory.
    public static let fileName = "feed-state.json"

    public let directory: String
    public var path: String { (directory as NSString).appendingPathComponent(Self.fileName) }

    public init(directory: String) {
        self.directory = directory
    }

    /// What the file holds.
    public struct Contents: Sendable {
        public var store: MirrorStore
        /// The feed server instance the revision belongs to.
        public var epoch: String?
        /// Everything in `store`, as added (what a fresh start must program).
        public var changes: ChangeSet
    }

    fileprivate struct Document: Codable {
        var format: Int
        var epoch: String?
        var revision: UInt64
        var state: MirrorState
    }

    /// Writes `store` (and the `epoch` its revision belongs to).
    /// - Throws: ``FeedStateFileError`` naming the file and the failing call.
    public func save(_ store: MirrorStore, epoch: String?) throws {
        let data = Self.encode(store, epoch: epoch)
        try data.withUnsafeReadableBytes { try Self.writeDurably($0, to: path) }
    }

    /// Writes `bytes` to `path` so that a crash leaves either the old file or the new one:
    /// a temporary file, fsynced, renamed over `path`, and the directory fsynced.
    /// - Throws: ``FeedStateFileError`` naming the file and the failing call.
    static func writeDurably(_ bytes: UnsafeRawBufferPointer, to path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // A name of its own per write: two agents sharing the state directory during a surged
        // rollout (both PID 1 in their containers) must not rename each other's file away.
        let temporary = path + ".tmp-" + UUID().uuidString.prefix(8)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FeedStateFileError(path: temporary, call: "open", errno: errno) }
        var failure: FeedStateFileError?
        var offset = 0
        while offset < bytes.count, let base = bytes.baseAddress {
            let written = write(fd, base + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                failure = FeedStateFileError(path: temporary, call: "write", errno: errno)
                break
            }
            offset += written
        }
        if failure == nil, fsync(fd) != 0 { failure = FeedStateFileError(path: temporary, call: "fsync", errno: errno) }
        close(fd)
        if let failure {
            unlink(temporary)
            throw failure
        }
        guard rename(temporary, path) == 0 else {
            let error = FeedStateFileError(path: path, call: "rename", errno: errno)
            unlink(temporary)
            throw error
        }
        let directoryFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            _ = fsync(directoryFD)
            close(directoryFD)
        }
    }

    /// Reads and validates the file; nil when there is none.
    /// - Throws: when the file exists but cannot be read or holds an invalid state.
    public func load() throws -> Contents? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw StateFileError(path: path, reason: (error as NSError).localizedDescription)
        }
        let document: Document
        if let fast = data.withUnsafeBytes({ try? Self.decodeFast($0) }) {
            document = fast
        } else {
            do {
                document = try JSONDecoder().decode(Document.self, from: data)
            } catch let error as DecodingError {
                throw StateFileError(path: path, reason: "not a feed state file (\(error.feedSummary))")
            }
        }
        guard document.format == 1 else {
            throw StateFileError(path: path, reason: "format \(document.format) is not understood by this version")
        }
        var store = MirrorStore()
        let changes = try store.applySnapshot(document.state, revision: document.revision)
        return Contents(store: store, epoch: document.epoch, changes: changes)
    }
}

extension FeedStateFile {
    /// The document as `JSONEncoder` with sorted keys would write it (services unsorted),
    /// by ``FeedJSONWriter``: a 100k-service state in a fraction of a second instead of ~3 s.
    fileprivate static func encode(_ store: MirrorStore, epoch: String?) -> ByteBuffer {
        var writer = FeedJSONWriter(capacity: 256 + store.services.count * 256)
        writer.raw("{")
        if let epoch {
            writer.raw("\"epoch\":")
            writer.string(epoch)
            writer.raw(",")
        }
        writer.raw("\"format\":1,\"revision\":")
        writer.unsigned(store.revision)
        writer.raw(",\"state\":")
        writer.write(unsorted: store)
        writer.raw("}\n")
        return writer.buffer
    }

    /// Reads a file in the form ``encode(_:)`` writes, with the model decoders that read
    /// state files and feed snapshots (``StateJSONDecoder``); anything else throws
    /// ``JSONCursor/Mismatch`` and goes to `JSONDecoder`, which names the problem.
    fileprivate static func decodeFast(_ bytes: UnsafeRawBufferPointer) throws -> Document {
        var decoder = StateJSONDecoder(bytes.assumingMemoryBound(to: UInt8.self))
        var format: Int?, epoch: String?, revision: UInt64?, state: MirrorState?
        try decoder.object(fields: ["format", "epoch", "revision", "state"]) { d, field in
            switch field {
            case 0: format = try d.cursor.int()
            case 1: epoch = try d.optionalString()
            case 2: revision = try d.cursor.uint64()
            default: state = try d.state()
            }
        }
        try decoder.cursor.finish()
        guard let format, let revision, let state else { throw JSONCursor.Mismatch() }
        return Document(format: format, epoch: epoch, revision: revision, state: state)
    }
}

/// The persisted feed state could not be written.
public struct FeedStateFileError: Error, CustomStringConvertible {
    public var path: String
    public var call: String
    public var errno: Int32

    public var description: String {
        "cannot persist the feed state to \(path): \(call) failed: \(String(cString: strerror(errno))) (errno \(errno)); check --state-dir is writable and not full"
    }
}
