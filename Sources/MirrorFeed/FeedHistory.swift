import NIOCore
import MirrorModel

/// The server's recent deltas, already encoded, so that a reconnecting client gets exactly
/// what it missed without the server re-encoding anything.
///
/// Bounded both in count and in bytes; the oldest deltas fall out first. A client whose
/// revision is older than ``floor`` gets a snapshot instead.
struct FeedHistory {
    let maxCount: Int
    let maxBytes: Int
    private var entries: [(revision: UInt64, line: ByteBuffer, type: String)] = []
    /// Index of the oldest live entry in `entries` (a cheap ring: compacted when half is dead).
    private var head = 0
    private(set) var bytes = 0
    /// The oldest revision a client may resume from: every delta after it is held.
    private(set) var floor: UInt64 = 0

    init(maxCount: Int, maxBytes: Int) {
        self.maxCount = max(1, maxCount)
        self.maxBytes = max(1, maxBytes)
    }

    var count: Int { entries.count - head }

    /// Appends the delta that produced `revision` (one more than the last); `type` is its
    /// event type, for metrics.
    mutating func append(revision: UInt64, line: ByteBuffer, type: String) {
        entries.append((revision, line, type))
        bytes += line.readableBytes
        while count > maxCount || (bytes > maxBytes && count > 1) {
            let dropped = entries[head]
            bytes -= dropped.line.readableBytes
            floor = dropped.revision
            head += 1
        }
        if head > 64 && head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
    }

    /// Forgets every delta: clients older than `revision` need a snapshot (used when a change
    /// was published as a snapshot).
    mutating func reset(at revision: UInt64) {
        entries = []
        head = 0
        bytes = 0
        floor = revision
    }

    /// The deltas after `revision`, oldest first; nil when some of them are no longer held.
    func lines(after revision: UInt64) -> [(revision: UInt64, line: ByteBuffer, type: String)]? {
        guard revision >= floor else { return nil }
        // Revisions are contiguous, so the first wanted entry is found by arithmetic.
        let skip = Int(revision - floor)
        let start = head + skip
        guard start <= entries.count else { return nil }
        return Array(entries[start...])
    }
}
