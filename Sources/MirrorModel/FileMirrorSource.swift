import Foundation
import Logging

/// A state file as a mirror source: applied at start, then again whenever its content changes.
///
/// Its directory is watched with inotify, so an edit is applied within milliseconds; a poll
/// (one `stat` per interval) stays as the fallback for filesystems that send no events
/// (network mounts) and for kernels without inotify. Either way the file is re-read only when
/// its inode, size or modification time changed, so rename-over-the-file saves and ConfigMap
/// symlink swaps are both seen.
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
        await onUpdate(MirrorUpdate(store: store, changes: changes, rebuilt: true))

        // Wake-ups from inotify and from the poll timer; a burst collapses into one re-read.
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let directory = (path as NSString).deletingLastPathComponent
        let watcher = DirectoryWatcher(directory: directory.isEmpty ? "." : directory) { wake.yield() }
        if watcher == nil {
            logger.notice("cannot watch the state file's directory with inotify; polling only", metadata: ["source": "\(description)", "interval": "\(pollInterval)"])
        }
        defer { watcher?.stop() }
        let interval = pollInterval
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                wake.yield()
            }
        }
        defer { ticker.cancel() }

        for await _ in wakeups {
            guard let current = try? stamp(), current != lastStamp else { continue }
            lastStamp = current
            do {
                let changes = try store.applySnapshot(contentsOf: path, revision: store.revision + 1)
                if changes.isEmpty { continue }
                logger.info("state file changed", metadata: [
                    "source": "\(description)", "revision": "\(store.revision)",
                    "services.added": "\(changes.addedServices.count)", "services.removed": "\(changes.removedServices.count)",
                    "services.changed": "\(changes.changedServices.count)",
                    "policies.added": "\(changes.addedPolicies.count)", "policies.removed": "\(changes.removedPolicies.count)",
                    "policies.changed": "\(changes.changedPolicies.count)",
                ])
                await onUpdate(MirrorUpdate(store: store, changes: changes, rebuilt: true))
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
