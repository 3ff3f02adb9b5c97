import Foundation
import Logging
import NIOConcurrencyHelpers
import MirrorModel
import MirrorFeed
import Testing

/// The state file as a source: edits are seen through inotify long before the (here very
/// long) poll interval, whether the file is rewritten in place or replaced by a rename, and a
/// bad edit publishes nothing.
@Suite("FileMirrorSource")
struct FileMirrorSourceTests {
    private static func state(_ clusters: [String]) -> String {
        "clusters:\n" + clusters.map { "  - name: \($0)\n" }.joined() + "services: []\n"
    }

    @Test("an edit is applied without waiting for the poll: in place, by rename, and a bad edit in between is skipped")
    func inotifyWakesTheSource() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("filesource-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("state.yaml")
        try Self.state(["paris"]).write(to: file, atomically: false, encoding: .utf8)

        let seen = NIOLockedValueBox<[Set<String>]>([])
        let source = FileMirrorSource(path: file.path, pollInterval: .seconds(3600), logger: Logger(label: "test"))
        let task = Task { try await source.run { update in seen.withLockedValue { $0.append(Set(update.store.clusters.keys)) } } }
        defer { task.cancel() }

        func waitFor(_ count: Int) async throws {
            let deadline = ContinuousClock.now + .seconds(10)
            while seen.withLockedValue({ $0.count }) < count {
                try #require(ContinuousClock.now < deadline, "no update \(count) within 10 s: \(seen.withLockedValue { $0 })")
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        try await waitFor(1)

        // In place (same inode), as `kubectl cp` or a shell redirect would.
        try Self.state(["paris", "berlin"]).write(to: file, atomically: false, encoding: .utf8)
        try await waitFor(2)

        // A bad edit: rejected, nothing published; then a good one by rename, as editors save.
        try "clusters: [{name: \"Not A Label\"}]\n".write(to: file, atomically: false, encoding: .utf8)
        try await Task.sleep(for: .milliseconds(200))
        let next = directory.appendingPathComponent("state.yaml.new")
        try Self.state(["paris", "berlin", "tokyo"]).write(to: next, atomically: false, encoding: .utf8)
        try #require(rename(next.path, file.path) == 0)
        try await waitFor(3)

        #expect(seen.withLockedValue { $0 } == [["paris"], ["paris", "berlin"], ["paris", "berlin", "tokyo"]])
    }
}
