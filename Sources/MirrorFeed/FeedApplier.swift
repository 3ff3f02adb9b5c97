import MirrorModel
/// The client side of the protocol's rules: applies watch events to a ``MirrorStore`` in
/// order, each event whole or not at all.
///
/// One applier lives across reconnections, so ``since`` and ``epoch`` are what the next
/// watch request resumes from. Any error leaves the store exactly as it was before the
/// offending event; the caller drops the connection and resumes.
public struct FeedApplier: Sendable {
    /// The last applied state.
    public private(set) var store: MirrorStore
    /// The server instance the store's revision belongs to; nil before the first snapshot.
    public private(set) var epoch: String?
    /// Whether the current connection has received its first event (snapshot or resume).
    public private(set) var streamStarted = false

    public init(store: MirrorStore = MirrorStore(), epoch: String? = nil) {
        self.store = store
        self.epoch = epoch
    }

    /// The revision to resume from, or nil when the next watch must start with a snapshot.
    public var since: UInt64? { epoch == nil ? nil : store.revision }

    /// Call when a new connection starts: its first event must be a snapshot or a resume.
    public mutating func beginStream() {
        streamStarted = false
    }

    /// Applies one event.
    ///
    /// - Returns: what changed, or nil when the event changed nothing (resume, bookmark).
    /// - Throws: ``FeedProtocolError`` or the store's validation error; nothing is applied.
    public mutating func apply(_ event: FeedEvent) throws -> ChangeSet? {
        switch event {
        case let .snapshot(epoch, revision, state):
            let changes = try store.applySnapshot(state, revision: revision)
            self.epoch = epoch
            streamStarted = true
            return changes
        case let .resumed(epoch, revision):
            guard !streamStarted else { throw FeedProtocolError.unexpected("resume in the middle of a stream") }
            guard epoch == self.epoch, revision == store.revision else {
                throw FeedProtocolError.badResume("server resumed \(epoch)@\(revision), client holds \(self.epoch ?? "nothing")@\(store.revision)")
            }
            streamStarted = true
            return nil
        case let .delta(revision, delta):
            guard streamStarted else { throw FeedProtocolError.unexpected("\(delta.summary) before the snapshot") }
            guard revision == store.revision + 1 else {
                throw FeedProtocolError.outOfOrder(expected: store.revision + 1, received: revision, event: delta.summary)
            }
            return try store.apply(delta, revision: revision)
        case let .bookmark(revision):
            guard streamStarted else { throw FeedProtocolError.unexpected("bookmark before the snapshot") }
            guard revision == store.revision else {
                throw FeedProtocolError.outOfOrder(expected: store.revision, received: revision, event: "bookmark")
            }
            return nil
        }
    }
}
