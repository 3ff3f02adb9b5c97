import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#endif

/// Which revision each watcher of one clients process holds, reported to the driver on
/// stdout as soon as every watcher of this process has reached a revision:
///
///     ready                       every watcher holds the initial revision (or newer)
///     applied REV FIRST LAST      REV reached by all: first and last watcher, CLOCK_MONOTONIC ns
///
/// Only revisions in `initial+1 ... last` are tallied, so memory stays bounded.
final class WatcherTally: Sendable {
    private struct State {
        var revisions: [UInt64]
        var ready = 0
        /// Per awaited revision: how many watchers reached it and when the first did.
        var reached: [UInt64: (count: Int, first: UInt64)] = [:]
    }

    private let state: NIOLockedValueBox<State>
    private let watchers: Int
    private let initial: UInt64
    private let last: UInt64

    init(watchers: Int, initial: UInt64, changes: Int) {
        self.watchers = watchers
        self.initial = initial
        self.last = initial + UInt64(changes)
        state = NIOLockedValueBox(State(revisions: Array(repeating: 0, count: watchers)))
    }

    /// Watcher `watcher` now holds `revision` (it has decoded and applied it).
    func record(watcher: Int, revision: UInt64) {
        let now = monotonicNanos()
        let lines: [String] = state.withLockedValue { s in
            let old = s.revisions[watcher]
            guard revision > old else { return [] }
            s.revisions[watcher] = revision
            var lines: [String] = []
            if old < initial, revision >= initial {
                s.ready += 1
                if s.ready == watchers { lines.append("ready") }
            }
            let from = max(old, initial) + 1, to = min(revision, last)
            if from <= to {
                for awaited in from...to {
                    var entry = s.reached[awaited] ?? (0, now)
                    entry.count += 1
                    s.reached[awaited] = entry
                    if entry.count == watchers { lines.append("applied \(awaited) \(entry.first) \(now)") }
                }
            }
            return lines
        }
        for line in lines { Self.emit(line) }
    }

    /// How many watchers do not hold the initial revision yet.
    var notReady: Int { state.withLockedValue { watchers - $0.ready } }

    /// One whole line to stdout in one write (shorter than PIPE_BUF, so never interleaved).
    static func emit(_ line: String) {
        var bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
    }
}
