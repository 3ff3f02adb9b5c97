import NIOCore
import MirrorModel

/// The watch streams open on one event loop.
///
/// A broadcast is queued once per loop (not once per watcher) and then written to each of its
/// watchers without further hops. Only ever touched on ``eventLoop``.
final class FeedLoopWatchers: @unchecked Sendable {
    // @unchecked: `sessions` is read and written only on `eventLoop` (asserted below).
    let eventLoop: any EventLoop
    private let metrics: FeedMetrics
    private var sessions: [ObjectIdentifier: FeedWatchSession] = [:]

    init(eventLoop: any EventLoop, hub: FeedHub) {
        self.eventLoop = eventLoop
        self.metrics = hub.metrics
    }

    func add(_ session: FeedWatchSession) {
        eventLoop.preconditionInEventLoop()
        sessions[ObjectIdentifier(session)] = session
    }

    func remove(_ session: FeedWatchSession) {
        eventLoop.preconditionInEventLoop()
        sessions[ObjectIdentifier(session)] = nil
    }

    /// Writes `batch` to every watcher on this loop, cutting those too far behind.
    func broadcast(_ batch: FeedBroadcast) {
        eventLoop.preconditionInEventLoop()
        var tally = FeedSendTally()
        for session in sessions.values {
            session.send(batch, tally: &tally)
        }
        tally.record(into: metrics)
    }

    /// Ends every stream (shutdown); the future completes when all are closed.
    func closeAll() -> EventLoopFuture<Void> {
        eventLoop.preconditionInEventLoop()
        let closing = sessions.values.map { $0.finish() }
        return EventLoopFuture.andAllComplete(closing, on: eventLoop)
    }
}

/// What one broadcast wrote, added to the metrics once per loop rather than per watcher.
struct FeedSendTally {
    var bytes: UInt64 = 0
    var events: [String: UInt64] = [:]
    var cut: UInt64 = 0

    mutating func count(type: String, bytes: Int) {
        self.bytes += UInt64(bytes)
        events[type, default: 0] += 1
    }

    func record(into metrics: FeedMetrics) {
        guard bytes > 0 || cut > 0 else { return }
        metrics.update { values in
            values.bytesSent += bytes
            values.watchersCut += cut
            for (type, count) in events { values.eventsSent[type, default: 0] += count }
        }
    }
}
