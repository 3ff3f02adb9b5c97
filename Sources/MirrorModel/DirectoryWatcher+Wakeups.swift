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
        try await withWakeups(forFilesAt: [path], pollInterval: pollInterval, body)
    }

    /// The same for several files (one watch per distinct directory): `watching` is true
    /// only when every directory is watched.
    package static func withWakeups<T>(
        forFilesAt paths: [String], pollInterval: Duration,
        _ body: (_ wakeups: AsyncStream<Void>, _ watching: Bool) async throws -> T
    ) async rethrows -> T {
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let directories = Set(paths.map { path -> String in
            let directory = (path as NSString).deletingLastPathComponent
            return directory.isEmpty ? "." : directory
        })
        let watchers = directories.map { DirectoryWatcher(directory: $0) { wake.yield() } }
        defer { watchers.forEach { $0?.stop() } }
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: pollInterval)
                wake.yield()
            }
        }
        defer { ticker.cancel() }
        return try await body(wakeups, watchers.allSatisfy { $0 != nil })
    }
}
