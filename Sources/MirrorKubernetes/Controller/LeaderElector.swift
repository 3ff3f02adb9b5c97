import Foundation
import Logging
import NIOConcurrencyHelpers

/// Leader election among feed replicas over a `coordination.k8s.io` Lease, so that exactly
/// one replica writes mirror Services while all of them serve the feed.
///
/// The rules follow client-go's: a replica takes the Lease when it is free, or when its
/// holder has not renewed it for `leaseDuration` — measured on this replica's own clock,
/// from when it last saw the Lease change, so clock skew between nodes does not matter.
/// Every write carries the Lease's resourceVersion: two replicas racing for it cannot both
/// win. A leader that cannot renew within `leaseDuration` stops counting itself leader
/// before any other replica may take over. On cancellation a leader hands the Lease back.
public final class LeaderElector: Sendable {
    /// What `dump` shows.
    public struct Status: Sendable, Codable, Equatable {
        public var identity: String
        public var isLeader: Bool
        /// The holder as last seen (this replica or another).
        public var holder: String?
        public var transitions: Int
        public var lastError: String?
    }

    private struct State {
        var status: Status
        /// The Lease as last read or written, and when (local clock) it last changed.
        var observed: KubeLease?
        var observedAt = ContinuousClock.now
        var renewedAt: ContinuousClock.Instant?
    }

    private let client: KubeClient
    private let namespace: String
    private let name: String
    private let identity: String
    private let leaseDuration: Duration
    private let logger: Logger
    private let state: NIOLockedValueBox<State>

    public init(client: KubeClient, namespace: String, name: String, identity: String, leaseDuration: Duration,
                logger: Logger) {
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.leaseDuration = leaseDuration
        self.logger = logger
        state = NIOLockedValueBox(State(status: Status(identity: identity, isLeader: false, holder: nil, transitions: 0)))
    }

    public var status: Status { state.withLockedValue { $0.status } }

    /// Whether this replica may write now: it holds the Lease and renewed it recently enough
    /// that no other replica can have taken it.
    public var isLeader: Bool {
        state.withLockedValue { state in
            guard state.status.isLeader, let renewed = state.renewedAt else { return false }
            return ContinuousClock.now - renewed < leaseDuration
        }
    }

    /// Campaigns and renews until cancelled, calling `onChange` when leadership is won or lost.
    public func run(onChange: @escaping @Sendable (Bool) async -> Void) async {
        var wasLeader = false
        while !Task.isCancelled {
            await attempt()
            let leader = isLeader
            if leader != wasLeader {
                wasLeader = leader
                logger.notice(leader ? "became the leader: this replica writes mirror Services" : "no longer the leader",
                              metadata: ["lease": "\(namespace)/\(name)", "identity": "\(identity)"])
                await onChange(leader)
            }
            // Renew three times per duration; candidates retry at the same pace, jittered so
            // that replicas started together do not collide every time.
            let period = leaseDuration.seconds / 3
            let wait = leader ? period : period * Double.random(in: 0.8...1.2)
            do { try await Task.sleep(for: .seconds(wait)) } catch { break }
        }
        if wasLeader {
            // This task is cancelled; the hand-back runs in one that is not.
            await Task { await release() }.value
            await onChange(false)
        }
    }

    private func attempt() async {
        do {
            let lease: KubeLease
            do {
                lease = try await client.get(KubeLease.self, namespace: namespace, name: name)
            } catch KubeError.notFound {
                let created = try await client.create(KubeLease(
                    metadata: ObjectMeta(name: name, namespace: namespace),
                    spec: claim(transitions: 0)))
                won(created)
                return
            }
            observe(lease)
            let holder = lease.spec.holderIdentity ?? ""
            if holder == identity {
                var renewed = lease
                renewed.spec.renewTime = KubeTime.microTime(Date())
                renewed.spec.leaseDurationSeconds = Int(leaseDuration.seconds.rounded(.up))
                won(try await client.update(renewed))
                return
            }
            let expired = state.withLockedValue { ContinuousClock.now - $0.observedAt >= leaseDuration }
            if holder.isEmpty || expired {
                var taken = lease
                taken.spec = claim(transitions: (lease.spec.leaseTransitions ?? 0) + 1)
                won(try await client.update(taken))
                if !holder.isEmpty { logger.notice("took over the lease from \(holder), which stopped renewing it") }
                return
            }
            state.withLockedValue {
                $0.status.isLeader = false
                $0.status.lastError = nil
            }
        } catch {
            // A conflict means another replica wrote first: read again next time.
            state.withLockedValue { $0.status.lastError = "\(error)" }
            if case KubeError.conflict = error { return }
            logger.warning("lease \(namespace)/\(name): \(error)")
        }
    }

    private func claim(transitions: Int) -> KubeLeaseSpec {
        let now = KubeTime.microTime(Date())
        return KubeLeaseSpec(holderIdentity: identity, leaseDurationSeconds: Int(leaseDuration.seconds.rounded(.up)),
                             acquireTime: now, renewTime: now, leaseTransitions: transitions)
    }

    /// Remembers when the Lease last changed, on this clock.
    private func observe(_ lease: KubeLease) {
        state.withLockedValue { state in
            if state.observed?.metadata.resourceVersion != lease.metadata.resourceVersion || state.observed == nil {
                state.observed = lease
                state.observedAt = .now
            }
            state.status.holder = lease.spec.holderIdentity
            state.status.transitions = lease.spec.leaseTransitions ?? 0
        }
    }

    private func won(_ lease: KubeLease) {
        state.withLockedValue { state in
            state.observed = lease
            state.observedAt = .now
            state.renewedAt = .now
            state.status.isLeader = true
            state.status.holder = identity
            state.status.transitions = lease.spec.leaseTransitions ?? 0
            state.status.lastError = nil
        }
    }

    /// Hands the Lease back (holder cleared) so another replica takes over at once instead of
    /// waiting out the duration.
    private func release() async {
        let observed = state.withLockedValue { state -> KubeLease? in
            state.status.isLeader = false
            return state.observed
        }
        guard var lease = observed, lease.spec.holderIdentity == identity else { return }
        lease.spec.holderIdentity = nil
        lease.spec.leaseDurationSeconds = 1
        do {
            _ = try await client.update(lease)
            logger.info("released the lease", metadata: ["lease": "\(namespace)/\(name)"])
        } catch {
            logger.warning("could not release lease \(namespace)/\(name): \(error)")
        }
    }
}
