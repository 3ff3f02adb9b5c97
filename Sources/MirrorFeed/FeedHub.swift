import Foundation
import NIOConcurrencyHelpers
import NIOCore
import MirrorModel

/// The heart of the feed server: the current state and revision, the history of recent
/// deltas, and every open watch stream grouped by event loop.
///
/// Each change is encoded once and the same bytes are written to every watcher. Publishing
/// and registration happen under one lock, and broadcasts are queued to each event loop
/// while it is held, so every watcher sees events in revision order with no gap.
public final class FeedHub: Sendable {
    /// The configuration of a hub.
    public struct Configuration: Sendable {
        /// Deltas held for resuming clients (count).
        public var historyCount = 10_000
        /// Deltas held for resuming clients (bytes).
        public var historyBytes = 64 << 20
        /// How often an idle stream gets a bookmark.
        public var bookmarkInterval: TimeAmount = .seconds(5)
        /// Unsent bytes a watcher may accumulate (beyond its initial snapshot) before it is cut.
        public var maxWatcherBacklog = 8 << 20
        /// Snapshot bytes being sent at once, over all watchers. Over it, new watches that
        /// need a snapshot get `503` and retry: with TLS each connection holds its own
        /// encrypted copy until the peer has read it, so a herd of reconnecting agents could
        /// otherwise need one whole state per agent. One snapshot is always admitted.
        public var maxSnapshotBytesInFlight = 256 << 20

        public init() {}
    }

    /// This server instance's identity; a client resuming with another epoch gets a snapshot.
    public let epoch: String
    public let configuration: Configuration
    public let metrics: FeedMetrics

    struct State {
        var revision: UInt64 = 0
        var current: FeedCurrentState?
        var snapshotLine: ByteBuffer?
        var history: FeedHistory
        var loops: [ObjectIdentifier: FeedLoopWatchers] = [:]
        var closed = false
        var snapshotBytesInFlight = 0
    }

    private let state: NIOLockedValueBox<State>

    public init(configuration: Configuration = Configuration(), metrics: FeedMetrics = FeedMetrics()) {
        self.epoch = UUID().uuidString.lowercased()
        self.configuration = configuration
        self.metrics = metrics
        self.state = NIOLockedValueBox(State(history: FeedHistory(maxCount: configuration.historyCount, maxBytes: configuration.historyBytes)))
    }

    /// Whether a first state has been published (readiness).
    public var isReady: Bool { state.withLockedValue { $0.current != nil } }

    /// The revision of the state served.
    public var revision: UInt64 { state.withLockedValue { $0.revision } }

    /// The state served (for tests and `dump`); nil for an exports hub.
    public var currentState: MirrorState? { state.withLockedValue { $0.current }?.state }

    /// Publishes an exports document (the stream gateways follow, `/v1/exports`) as a whole
    /// snapshot at the next revision: exports documents are small and change as a whole, so
    /// this stream carries snapshots, resumes and bookmarks only.
    public func publishExports(_ document: ExportsDocument) throws {
        try state.withLockedValue { s in
            let revision = s.revision + 1
            let line = try ExportsEvent.snapshot(epoch: epoch, revision: revision, exports: document).encodedChunk()
            let wasReady = s.current != nil
            s.revision = revision
            s.current = .exports(document)
            s.snapshotLine = line
            s.history.reset(at: revision)
            dispatch(FeedBroadcast(lines: [(revision, line, "snapshot")], isReset: true), to: s.loops)
            metrics.update {
                $0.revision = revision
                if wasReady { $0.snapshotsPublished += 1 }
            }
        }
    }

    // MARK: publishing

    /// Publishes `newState` as a whole snapshot at the next revision: used for the first state
    /// and for changes deltas cannot express. Clients older than it must start over.
    public func publishSnapshot(_ newState: MirrorState) throws {
        try state.withLockedValue { s in
            let revision = s.revision + 1
            let line = try FeedEvent.snapshot(epoch: epoch, revision: revision, state: newState).encodedChunk()
            let wasReady = s.current != nil
            s.revision = revision
            s.current = .state(newState)
            s.snapshotLine = line
            s.history.reset(at: revision)
            let batch = FeedBroadcast(lines: [(revision, line, "snapshot")], isReset: true)
            dispatch(batch, to: s.loops)
            let historySize = s.history.count
            metrics.update {
                $0.revision = revision
                $0.historySize = historySize
                if wasReady { $0.snapshotsPublished += 1 }
            }
        }
    }

    /// Publishes `deltas`, in order, each at its own revision; `newState` is the state after
    /// the last one. The caller has checked that they apply cleanly in this order.
    public func publish(_ deltas: [MirrorDelta], resulting newState: MirrorState) throws {
        try publish(deltas, resulting: .state(newState))
    }

    /// Publishes `deltas` like the `MirrorState` variant, with the state after them as a
    /// store: its sorted ``MirrorStore/state`` (O(n log n)) is then built only when a new
    /// watcher needs a snapshot, not for every change.
    public func publish(_ deltas: [MirrorDelta], resulting newStore: MirrorStore) throws {
        try publish(deltas, resulting: .store(newStore))
    }

    private func publish(_ deltas: [MirrorDelta], resulting current: FeedCurrentState) throws {
        guard !deltas.isEmpty else { return }
        try state.withLockedValue { s in
            var lines: [(UInt64, ByteBuffer, String)] = []
            var revision = s.revision
            for delta in deltas {
                revision += 1
                let event = FeedEvent.delta(revision: revision, delta)
                lines.append((revision, try event.encodedChunk(), event.typeName))
            }
            for (revision, line, type) in lines { s.history.append(revision: revision, line: line, type: type) }
            s.revision = revision
            s.current = current
            s.snapshotLine = nil
            dispatch(FeedBroadcast(lines: lines, isReset: false), to: s.loops)
            let historySize = s.history.count
            metrics.update {
                $0.revision = revision
                $0.historySize = historySize
                $0.deltasPublished += UInt64(deltas.count)
            }
        }
    }

    /// Sends a bookmark at the current revision to every watcher.
    func publishBookmark() {
        state.withLockedValue { s in
            guard s.current != nil, !s.closed else { return }
            let line = (try? FeedEvent.bookmark(revision: s.revision).encodedChunk()) ?? ByteBuffer()
            dispatch(FeedBroadcast(lines: [(s.revision, line, "bookmark")], isReset: false, isBookmark: true), to: s.loops)
        }
    }

    private func dispatch(_ batch: FeedBroadcast, to loops: [ObjectIdentifier: FeedLoopWatchers]) {
        for watchers in loops.values {
            watchers.eventLoop.execute { watchers.broadcast(batch) }
        }
    }

    // MARK: watchers

    /// How a new watch stream starts.
    enum Start {
        /// Not ready: no state yet, or shutting down.
        case unavailable
        /// Too many snapshots are being sent; retry shortly.
        case busy
        /// The lines to write first (a snapshot, or a resume marker and the missed deltas).
        case lines([(UInt64, ByteBuffer, String)], resumed: Bool, loop: FeedLoopWatchers)
    }

    /// Decides how a watch starting on `eventLoop` with `since`/`epoch` begins. Must be called
    /// on `eventLoop`; the caller adds itself to the returned loop's watchers before returning
    /// to the loop, so that no broadcast is missed (duplicates are dropped by revision).
    func start(on eventLoop: any EventLoop, since: UInt64?, epoch clientEpoch: String?) -> Start {
        state.withLockedValue { s in
            guard let current = s.current, !s.closed else { return .unavailable }
            let key = ObjectIdentifier(eventLoop)
            let loop: FeedLoopWatchers
            if let existing = s.loops[key] {
                loop = existing
            } else {
                loop = FeedLoopWatchers(eventLoop: eventLoop, hub: self)
                s.loops[key] = loop
            }
            if let since, clientEpoch == epoch, since <= s.revision, let missed = s.history.lines(after: since) {
                let resume = (try? FeedEvent.resumed(epoch: epoch, revision: since).encodedChunk()) ?? ByteBuffer()
                let lines = [(since, resume, "resume")] + missed.map { ($0.revision, $0.line, $0.type) }
                return .lines(lines, resumed: true, loop: loop)
            }
            if s.snapshotLine == nil, let state = current.state {
                s.snapshotLine = try? FeedEvent.snapshot(epoch: epoch, revision: s.revision, state: state).encodedChunk()
            }
            guard let snapshot = s.snapshotLine else { return .unavailable }
            let size = snapshot.readableBytes
            guard s.snapshotBytesInFlight == 0 || s.snapshotBytesInFlight + size <= configuration.maxSnapshotBytesInFlight else { return .busy }
            s.snapshotBytesInFlight += size
            let inFlight = s.snapshotBytesInFlight
            metrics.update { $0.snapshotBytesInFlight = inFlight }
            return .lines([(s.revision, snapshot, "snapshot")], resumed: false, loop: loop)
        }
    }

    /// A snapshot of `size` bytes admitted by ``start(on:since:epoch:)`` was written out (or
    /// its connection closed): it no longer counts against the in-flight budget.
    func snapshotDone(size: Int) {
        state.withLockedValue { s in
            s.snapshotBytesInFlight -= size
            let inFlight = s.snapshotBytesInFlight
            metrics.update { $0.snapshotBytesInFlight = inFlight }
        }
    }

    /// Snapshot bytes admitted and not yet written out.
    public var snapshotBytesInFlight: Int { state.withLockedValue { $0.snapshotBytesInFlight } }

    /// Stops accepting watches, ends every open stream, and returns once they are closed.
    public func close() async {
        let loops = state.withLockedValue { s in
            s.closed = true
            return Array(s.loops.values)
        }
        for watchers in loops {
            try? await watchers.eventLoop.flatSubmit { watchers.closeAll() }.get()
        }
    }
}

/// The state served, as published: a whole state, or the store deltas led to (turned into a
/// sorted state only when needed); or, for the gateways' stream, an exports document.
enum FeedCurrentState: Sendable {
    case state(MirrorState)
    case store(MirrorStore)
    /// An exports hub's document (its snapshot line is always kept).
    case exports(ExportsDocument)

    var state: MirrorState? {
        switch self {
        case .state(let state): state
        case .store(let store): store.state
        case .exports: nil
        }
    }
}

/// Lines queued for every watcher on one event loop.
struct FeedBroadcast: Sendable {
    /// Revision, encoded line, and event type (for metrics), oldest first.
    var lines: [(UInt64, ByteBuffer, String)]
    /// A snapshot that replaces the state (after a change deltas cannot express).
    var isReset: Bool
    var isBookmark = false
}
