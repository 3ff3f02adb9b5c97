import Logging
import NIOConcurrencyHelpers

/// Turns a ``MirrorSource``'s successive states into the feed's events: the first state as a
/// snapshot, then each change as the deltas that lead from the old state to the new one.
///
/// The source only reports valid states (a bad edit is logged there and nothing reaches the
/// publisher), so nothing is ever published for a rejected edit. Deltas are ordered so that
/// each one is valid on its own when applied in turn — service deletes, cluster upserts,
/// service upserts, cluster deletes — and the order is checked by applying it to a copy of
/// the old state. A change no order can express (a new cluster domain, two services swapping
/// a ClusterIP) is published as a snapshot instead.
public struct FeedPublisher: Sendable {
    private let hub: FeedHub
    private let source: any MirrorSource
    private let logger: Logger

    public init(hub: FeedHub, source: any MirrorSource, logger: Logger) {
        self.hub = hub
        self.source = source
        self.logger = logger
    }

    /// Follows the source until cancelled (or until the source fails).
    public func run() async throws {
        let previous = NIOLockedValueBox<MirrorStore?>(nil)
        try await source.run { [hub, logger] update in
            let old = previous.withLockedValue { $0 }
            let new = update.store
            do {
                if let old, let deltas = Self.deltas(from: old, to: new, changes: update.changes) {
                    try hub.publish(deltas, resulting: new.state)
                    logger.info("published deltas", metadata: ["revision": "\(hub.revision)", "deltas": "\(deltas.count)"])
                } else {
                    try hub.publishSnapshot(new.state)
                    logger.info("published snapshot", metadata: ["revision": "\(hub.revision)", "services": "\(new.services.count)"])
                }
                previous.withLockedValue { $0 = new }
            } catch {
                logger.error("could not encode the new state; still serving the previous one", metadata: ["error": "\(error)"])
            }
        }
    }

    /// The deltas that take `old` to `new`, in an order where each applies cleanly; nil when
    /// the change needs a snapshot.
    public static func deltas(from old: MirrorStore, to new: MirrorStore, changes: ChangeSet) -> [MirrorDelta]? {
        guard !changes.clusterDomainChanged else { return nil }
        var candidates: [MirrorDelta] = []
        candidates += changes.removedServices.sorted().map { .deleteService($0) }
        candidates += changes.addedClusters.union(changes.changedClusters).sorted().compactMap { new.clusters[$0] }.map { .upsertCluster($0) }
        candidates += changes.addedServices.union(changes.changedServices).sorted().compactMap { new.services[$0] }.map { .upsertService($0) }
        candidates += changes.removedClusters.sorted().map { .deleteCluster(name: $0) }

        // Apply to a copy; a delta that does not fit yet (it depends on a later one) is
        // retried in the next pass. A pass without progress means no order works.
        var trial = old
        var ordered: [MirrorDelta] = []
        var pending = candidates
        var passes = 0
        while !pending.isEmpty {
            passes += 1
            guard passes <= 4 else { return nil }
            var deferred: [MirrorDelta] = []
            for delta in pending {
                if (try? trial.apply(delta, revision: trial.revision + 1)) != nil {
                    ordered.append(delta)
                } else {
                    deferred.append(delta)
                }
            }
            guard deferred.count < pending.count else { return nil }
            pending = deferred
        }
        // Compared by key (no sorting): the deltas must lead exactly to the new state.
        let reached = trial.clusterDomain == new.clusterDomain && trial.clusters == new.clusters && trial.services == new.services
        return reached ? ordered : nil
    }
}
