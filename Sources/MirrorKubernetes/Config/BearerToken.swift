import Foundation
import NIOConcurrencyHelpers

/// A bearer token, fixed or read from a file.
///
/// A file token is re-read whenever the file changes (inode, size or modification time),
/// checked on every request: projected service account tokens rotate (every hour or so)
/// and the kubelet swaps the file through a symlink. If a re-read fails, the last good
/// token is kept, so a swap caught half-way does not fail a request.
public final class BearerToken: Sendable {
    private enum Source {
        case fixed(String)
        case file(String)
    }

    private struct Cached {
        var token: String
        var stamp: FileStamp
    }

    private let source: Source
    private let cache = NIOLockedValueBox<Cached?>(nil)

    public init(fixed token: String) { source = .fixed(token) }
    public init(file path: String) { source = .file(path) }

    /// The file, for logs; nil for a fixed token.
    public var path: String? {
        if case .file(let path) = source { return path }
        return nil
    }

    /// The token to send now.
    public func current() throws -> String {
        switch source {
        case .fixed(let token):
            return token
        case .file(let path):
            let stamp = FileStamp(path: path)
            if let cached = cache.withLockedValue({ $0 }), let stamp, cached.stamp == stamp { return cached.token }
            do {
                let text = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
                guard !text.isEmpty else { throw BearerTokenError(description: "token file \(path) is empty") }
                if let stamp { cache.withLockedValue { $0 = Cached(token: text, stamp: stamp) } }
                return text
            } catch {
                if let cached = cache.withLockedValue({ $0 }) { return cached.token }
                if let error = error as? BearerTokenError { throw error }
                throw BearerTokenError(description: "cannot read token file \(path): \(KubeConfigError.reason(error))")
            }
        }
    }
}

public struct BearerTokenError: Error, CustomStringConvertible {
    public var description: String
}

/// What tells a changed file apart (following symlinks, as a Secret volume's are).
struct FileStamp: Equatable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var modifiedSeconds: Int
    var modifiedNanoseconds: Int

    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        #if os(Linux)
        modifiedSeconds = Int(info.st_mtim.tv_sec)
        modifiedNanoseconds = Int(info.st_mtim.tv_nsec)
        #else
        modifiedSeconds = Int(info.st_mtimespec.tv_sec)
        modifiedNanoseconds = Int(info.st_mtimespec.tv_nsec)
        #endif
    }
}
