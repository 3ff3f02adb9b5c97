import Foundation
import Logging

/// Where a gateway's exports document comes from: a file, or (later) the feed.
///
/// A source runs until its task is cancelled. It calls `onUpdate` with each valid document
/// that differs from the last one, in order, and never with an invalid one: invalid input is
/// logged and the last good document stays in force, so a bad edit cannot take the gateway's
/// services down.
public protocol ExportsSource: Sendable {
    /// A short description for logs: `file:/etc/mirror/exports.yaml`.
    var description: String { get }

    func run(onUpdate: @escaping @Sendable (ExportsDocument) async -> Void) async throws
}

/// An exports file as a source: delivered at start, then again whenever its document changes.
///
/// Wake-ups come from inotify on the file's directory, so a rename over the file and a
/// ConfigMap's symlink swap are seen at once, with a poll as the fallback. The file is small
/// (a few lines per exported port), so each wake-up reads it and compares the bytes with the
/// last read: unlike a size and modification-time check, that also sees an edit within one
/// timestamp tick, and a file that stays bad or unreadable is reported once, not at every poll.
public struct FileExportsSource: ExportsSource {
    public let path: String
    public let gatewayPorts: GatewayPortRange
    public let pollInterval: Duration
    private let logger: Logger
    private let onRejected: (@Sendable (String) -> Void)?

    /// - Parameter onRejected: called with the error's description (every issue) each time a
    ///   changed file is refused after the first read, so a caller can surface it (a metric,
    ///   a health check); the error is logged either way.
    public init(path: String, gatewayPorts: GatewayPortRange = .default, pollInterval: Duration = .milliseconds(500),
                logger: Logger, onRejected: (@Sendable (String) -> Void)? = nil) {
        self.path = path
        self.gatewayPorts = gatewayPorts
        self.pollInterval = pollInterval
        self.logger = logger
        self.onRejected = onRejected
    }

    public var description: String { "file:\(path)" }

    /// Reads the file once; throws when that first read fails, since the gateway would have
    /// nothing to serve. Later bad edits are logged and reported to `onRejected`.
    public func run(onUpdate: @escaping @Sendable (ExportsDocument) async -> Void) async throws {
        var reading = read()
        var current = try document(from: reading)
        logger.info("loaded exports", metadata: ["source": "\(description)", "exports": "\(current.exports.count)"])
        await onUpdate(current)

        await DirectoryWatcher.withWakeups(forFileAt: path, pollInterval: pollInterval) { wakeups, watching in
            if !watching {
                logger.notice("cannot watch the exports file's directory with inotify; polling only",
                              metadata: ["source": "\(description)", "interval": "\(pollInterval)"])
            }
            for await _ in wakeups {
                let next = read()
                guard next != reading else { continue }
                reading = next
                do {
                    let document = try document(from: next)
                    guard document != current else { continue }
                    current = document
                    logger.info("exports file changed", metadata: ["source": "\(description)", "exports": "\(document.exports.count)"])
                    await onUpdate(document)
                } catch {
                    logger.error("exports file rejected; keeping the previous document",
                                 metadata: ["source": "\(description)", "error": "\(error)"])
                    onRejected?("\(error)")
                }
            }
        }
    }

    /// What one read of the file found.
    private enum Reading: Equatable {
        case content(Data)
        case unreadable(ExportsFileError)
    }

    private func read() -> Reading {
        do {
            return .content(try ExportsDocument.readFile(path))
        } catch {
            return .unreadable(error)
        }
    }

    private func document(from reading: Reading) throws -> ExportsDocument {
        switch reading {
        case .content(let data): try ExportsDocument.parse(contentsOf: data, path: path, gatewayPorts: gatewayPorts)
        case .unreadable(let error): throw error
        }
    }
}
