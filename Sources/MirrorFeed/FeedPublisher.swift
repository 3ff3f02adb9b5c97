import Logging
import NIOConcurrencyHelpers
import MirrorModel

/// Turns a ``MirrorSource``'s successive states into the feed's events: the first state as a
/// snapshot, then each change as the deltas that lead from the old state to the new one.
///
/// The source only reports valid states (a bad edit is logged there and nothing reaches the
/// publisher), so nothing is ever published for a rejected edit. Deltas are ordered so that
/// each one is valid on its own when applied in turn — policy deletes, service deletes,
/// cluster upserts, service upserts, policy upserts, cluster deletes — and the order is
/// checked by applying it to the store as last published (a delta that only fits later, such
/// as a service delete waiting for the policy upsert that stops using it, is retried after
/// the others). A change no order can express (a new cluster domain, two services swapping
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
        // The store as last published. It is taken out of the box for each change so that it
        // is the only reference to its storage: the deltas are then checked by applying them
        // to it in place, which costs the size of the change, not of the state (a copy of a
        // 100k-service store costs ~200 ms). After a failure it stays empty and the next
        // change goes out as a snapshot.
        let published = NIOLockedValueBox<MirrorStore?>(nil)
        try await source.run { [hub, logger] update in
            let new = update.store
            var deltas: [MirrorDelta]?
            var reached: MirrorStore?
            if var trial = published.withLockedValue({ box -> MirrorStore? in
                defer { box = nil }
                return box
            }) {
                deltas = Self.orderDeltas(applyingTo: &trial, reaching: new, changes: update.changes)
                reached = trial
            }
            do {
                if let deltas, let reached {
                    try hub.publish(deltas, resulting: new)
                    published.withLockedValue { $0 = reached }
                    logger.info("published deltas", metadata: ["revision": "\(hub.revision)", "deltas": "\(deltas.count)"])
                } else {
                    try hub.publishSnapshot(new.state)
                    published.withLockedValue { $0 = new }
                    logger.info("published snapshot", metadata: ["revision": "\(hub.revision)", "services": "\(new.services.count)"])
                }
            } catch {
                logger.error("could not encode the new state; still serving the previous one", metadata: ["error": "\(error)"])
            }
        }
    }

    /// The deltas that take `old` to `new`, in an order where each applies cleanly; nil when
    /// the change needs a snapshot.
    public static func deltas(from old: MirrorStore, to new: MirrorStore, changes: ChangeSet) -> [MirrorDelta]? {
        var trial = old
        return orderDeltas(applyingTo: &trial, reaching: new, changes: changes)
    }

    /// Orders the deltas of `changes` by applying them to `store` (the old state; afterwards
    /// the new one when deltas are returned, unspecified when nil is).
    ///
    /// Only what `changes` names is compared with `new`: everything else was equal before and
    /// no delta touched it, so a change costs the same whatever the size of the state.
    static func orderDeltas(applyingTo store: inout MirrorStore, reaching new: MirrorStore, changes: ChangeSet) -> [MirrorDelta]? {
        guard !changes.clusterDomainChanged else { return nil }
        var candidates: [MirrorDelta] = []
        candidates += changes.removedPolicies.sorted().map { .deletePolicy($0) }
        candidates += changes.removedServices.sorted().map { .deleteService($0) }
        candidates += changes.addedClusters.union(changes.changedClusters).sorted().compactMap { new.clusters[$0] }.map { .upsertCluster($0) }
        candidates += changes.addedServices.union(changes.changedServices).sorted().compactMap { new.services[$0] }.map { .upsertService($0) }
        candidates += changes.addedPolicies.union(changes.changedPolicies).sorted().compactMap { new.policies[$0] }.map { .upsertPolicy($0) }
        candidates += changes.removedClusters.sorted().map { .deleteCluster(name: $0) }

        // A delta that does not fit yet (it depends on a later one) is retried in the next
        // pass; a rejected delta leaves the store unchanged. A pass without progress means no
        // order works.
        var ordered: [MirrorDelta] = []
        var pending = candidates
        var passes = 0
        while !pending.isEmpty {
            passes += 1
            guard passes <= 4 else { return nil }
            var deferred: [MirrorDelta] = []
            for delta in pending {
                if (try? store.apply(delta, revision: store.revision + 1)) != nil {
                    ordered.append(delta)
                } else {
                    deferred.append(delta)
                }
            }
            guard deferred.count < pending.count else { return nil }
            pending = deferred
        }
        let clusterKeys = changes.addedClusters.union(changes.changedClusters).union(changes.removedClusters)
        let serviceKeys = changes.addedServices.union(changes.changedServices).union(changes.removedServices)
        let policyKeys = changes.addedPolicies.union(changes.changedPolicies).union(changes.removedPolicies)
        let reached = store.clusterDomain == new.clusterDomain
            && clusterKeys.allSatisfy { store.clusters[$0] == new.clusters[$0] }
            && serviceKeys.allSatisfy { store.services[$0] == new.services[$0] }
            && policyKeys.allSatisfy { store.policies[$0] == new.policies[$0] }
            && store.clusters.count == new.clusters.count && store.services.count == new.services.count
            && store.policies.count == new.policies.count
        return reached ? ordered : nil
    }
}
