import Foundation
import Logging

/// A state file as a mirror source: applied at start, then again whenever its content changes.
///
/// The file is polled (cheap: one `stat` per interval) rather than watched with inotify, so
/// that editors replacing the file by rename and ConfigMap symlink swaps are both seen.
public struct FileMirrorSource: MirrorSource {
    public let path: String
    public let pollInterval: Duration
    private let logger: Logger

    public init(path: String, pollInterval: Duration = .milliseconds(500), logger: Logger) {
        self.path = path
        self.pollInterval = pollInterval
        self.logger = logger
    }

    public var description: String { "file:\(path)" }

    /// Reads the file once; throws when the first read fails, since the agent would have
    /// nothing to serve. Later bad edits are only logged.
    public func run(onUpdate: @escaping @Sendable (MirrorUpdate) async -> Void) async throws {
        var store = MirrorStore()
        var lastStamp = try stamp()
        let changes = try store.applySnapshot(contentsOf: path, revision: 1)
        logger.info("loaded mirror state", metadata: ["source": "\(description)", "services": "\(store.services.count)", "clusters": "\(store.clusters.count)"])
        await onUpdate(MirrorUpdate(store: store, changes: changes))

        while !Task.isCancelled {
            try await Task.sleep(for: pollInterval)
            guard let current = try? stamp(), current != lastStamp else { continue }
            lastStamp = current
            do {
                let changes = try store.applySnapshot(contentsOf: path, revision: store.revision + 1)
                if changes.isEmpty { continue }
                logger.info("state file changed", metadata: [
                    "source": "\(description)", "revision": "\(store.revision)",
                    "services.added": "\(changes.addedServices.count)", "services.removed": "\(changes.removedServices.count)",
                    "services.changed": "\(changes.changedServices.count)",
                ])
                await onUpdate(MirrorUpdate(store: store, changes: changes))
            } catch {
                logger.error("state file rejected; keeping the previous state", metadata: ["source": "\(description)", "error": "\(error)"])
            }
        }
    }

    /// What identifies one version of the file without reading it.
    private struct Stamp: Equatable {
        var inode: UInt64
        var size: UInt64
        var modified: Date
    }

    private func stamp() throws -> Stamp {
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: (path as NSString).resolvingSymlinksInPath)
            return Stamp(
                inode: (attributes[.systemFileNumber] as? NSNumber)?.uint64Value ?? 0,
                size: (attributes[.size] as? NSNumber)?.uint64Value ?? 0,
                modified: attributes[.modificationDate] as? Date ?? .distantPast
            )
        } catch {
            throw StateFileError(path: path, reason: (error as NSError).localizedDescription)
        }
    }
}
