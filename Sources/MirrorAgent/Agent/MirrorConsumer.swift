import MirrorModel
import MirrorFeed

/// A part of the agent that follows the mirror state: the DNS responder, the nftables
/// programmer. `Run` starts each consumer and hands it every applied update in order.
protocol MirrorConsumer: Sendable {
    /// Brings this part in line with `update.store`, using `update.changes` to do only the
    /// work the change needs. Errors are logged by the caller; the consumer must keep its
    /// last good state when it fails.
    func apply(_ update: MirrorUpdate) async throws

    /// Starts work for `update` that may run while earlier parts apply it (default: nothing).
    func prepare(_ update: MirrorUpdate) async
}

extension MirrorConsumer {
    /// Called for every part before any part applies `update`: a chance to start expensive,
    /// side-effect-free work (building a table) that overlaps the earlier parts' `apply`.
    func prepare(_ update: MirrorUpdate) async {}
}
