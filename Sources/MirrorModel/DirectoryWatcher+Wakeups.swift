import Foundation

extension DirectoryWatcher {
    /// Runs `body` with the wake-ups of the file at `path`: an inotify watch on its directory
    /// (so a rename over the file and a ConfigMap's symlink swap are seen at once) and a tick
    /// every `pollInterval`, the fallback for filesystems that send no events (network mounts).
    /// A burst of wake-ups collapses into one; the watch and the ticks stop when `body` returns.
    ///
    /// - Parameter body: gets the wake-ups and whether inotify watches (false: polling only).
    package static func withWakeups<T>(
        forFileAt path: String, pollInterval: Duration,
        _ body: (_ wakeups: AsyncStream<Void>, _ watching: Bool) async throws -> T
    ) async rethrows -> T {
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let directory = (path as NSString).deletingLastPathComponent
        let watcher = DirectoryWatcher(directory: directory.isEmpty ? "." : directory) { wake.yield() }
        defer { watcher?.stop() }
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: pollInterval)
                wake.yield()
            }
        }
        defer { ticker.cancel() }
        return try await body(wakeups, watcher != nil)
    }
}
