import Foundation
import Logging
import NIOConcurrencyHelpers

/// One comparison of the local mirror Services with what the translation wants.
struct MirrorWritePlan: Sendable {
    /// The mirror Services to keep (``MirrorTranslation/mirrorServices``).
    var desired: [KubeService]
    /// The local Services carrying this agent's labels, as the local informer holds them.
    var existing: [KubeService]
    /// The clusters the current Links name.
    var linkedClusters: Set<String>
    /// Linked clusters whose remote API has never been listed: their mirrors are not deleted.
    var unlistedClusters: Set<String>
    /// Whether a retry of earlier failures (name clash, missing namespace) is due.
    var retryFailures: Bool
}

/// Creates, updates and deletes the local mirror Services (`<svc>-<cluster>`,
/// `<svc>-federated`) so that they match the translation, at a bounded rate.
///
/// Safety rules, because a wrong delete cuts traffic:
/// - only Services with this agent's labels are ever updated or deleted; a Service of the
///   same name without them is a clash, reported and left alone;
/// - a mirror of a cluster whose remote API has never answered is kept (a restart while a
///   remote is down deletes nothing), and `<svc>-federated` mirrors are only deleted once
///   every remote has been listed;
/// - deletes carry the resourceVersion the decision was based on.
/// The local API server allocates each mirror's ClusterIP on create; updates keep it.
final class MirrorServiceWriter: Sendable {
    /// What `dump` shows.
    struct Report: Sendable, Codable, Equatable {
        var created = 0
        var updated = 0
        var deleted = 0
        /// Mirrors that could not be written, by `namespace/name`, with the reason.
        var problems: [String: String] = [:]
        var lastPass: Date?
    }

    private struct State {
        var report = Report()
        /// Our recent writes, used until the local informer has caught up with them (nil: deleted).
        var recent: [String: (object: KubeService?, at: ContinuousClock.Instant)] = [:]
    }

    private let client: KubeClient
    private let limiter: WriteRateLimiter
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    init(client: KubeClient, qps: Double, burst: Int, logger: Logger) {
        self.client = client
        limiter = WriteRateLimiter(qps: qps, burst: burst)
        self.logger = logger
    }

    var report: Report { state.withLockedValue { $0.report } }

    private enum Operation: Sendable {
        case create(KubeService)
        case update(KubeService)
        case delete(KubeService, reason: String)
    }

    /// Writes in flight at once: the API server's round trip, not the rate, bounds a
    /// sequential writer (~5 ms each is 200/s whatever `--write-qps` allows).
    static let concurrency = 8

    /// Applies `plan` while `mayWrite` holds (leadership). Returns whether some write failed
    /// in a way worth retrying soon (a conflict, a server error).
    func reconcile(_ plan: MirrorWritePlan, mayWrite: @escaping @Sendable () -> Bool) async -> Bool {
        let operations = self.operations(for: plan)
        let retry = NIOLockedValueBox(false)
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            for operation in operations {
                guard mayWrite(), !Task.isCancelled else { break }
                if running == Self.concurrency {
                    await group.next()
                    running -= 1
                }
                group.addTask {
                    if await self.perform(operation, mayWrite: mayWrite) { retry.withLockedValue { $0 = true } }
                }
                running += 1
            }
        }
        state.withLockedValue { $0.report.lastPass = Date() }
        return retry.withLockedValue { $0 }
    }

    /// What `plan` asks for, in order: creates and updates, then deletes.
    private func operations(for plan: MirrorWritePlan) -> [Operation] {
        let existing = effective(plan.existing)
        let desiredKeys = Set(plan.desired.map(\.key))
        let problems = state.withLockedValue { state in
            state.report.problems = state.report.problems.filter { desiredKeys.contains($0.key) }
            return state.report.problems
        }
        var operations: [Operation] = []
        var settled: [String] = []
        for service in plan.desired {
            let key = service.key
            if let current = existing[key] {
                if let changed = Self.updated(current, toMatch: service) {
                    if plan.retryFailures || problems[key] == nil { operations.append(.update(changed)) }
                } else if problems[key] != nil {
                    settled.append(key)
                }
            } else if plan.retryFailures || problems[key] == nil {
                operations.append(.create(service))
            }
        }
        // Only the few no longer wanted are sorted (sorting all of them cost a fifth of the
        // feed's CPU per change at 5,000 services).
        let unwanted = existing.filter { !desiredKeys.contains($0.key) }.sorted { $0.key < $1.key }.map(\.value)
        for service in unwanted {
            guard Self.owned(service) else { continue }
            let reason: String
            if let cluster = service.metadata.labels?[MirrorTranslator.clusterNameLabel] {
                // A cluster still linked but never listed may simply be unreachable.
                if plan.unlistedClusters.contains(cluster) { continue }
                reason = plan.linkedClusters.contains(cluster) ? "no longer exported by \(cluster)" : "no Link names cluster \(cluster)"
            } else {
                if !plan.unlistedClusters.isEmpty { continue }
                reason = "no federated member left"
            }
            operations.append(.delete(service, reason: reason))
        }
        if !settled.isEmpty { state.withLockedValue { state in settled.forEach { state.report.problems[$0] = nil } } }
        return operations
    }

    /// One write, rate-limited; true when it failed in a way worth retrying soon.
    private func perform(_ operation: Operation, mayWrite: @Sendable () -> Bool) async -> Bool {
        do {
            try await limiter.acquire()
            guard mayWrite() else { return false }
        } catch {
            return false
        }
        switch operation {
        case .create(let service):
            let key = service.key
            do {
                let written = try await client.create(service)
                record(key, written) { $0.created += 1 }
                logger.info("created mirror Service", metadata: ["service": "\(key)", "clusterIP": "\(written.spec.clusterIP ?? "")"])
            } catch KubeError.alreadyExists {
                problem(key, "a Service with this name exists without mirror-agent's labels (\(MirrorTranslator.serviceProxyNameLabel)=\(MirrorTranslator.serviceProxyName)); left untouched, not mirrored")
            } catch KubeError.notFound(let status) {
                let message = status.message ?? ""
                problem(key, message.contains("namespace")
                        ? "namespace \(service.metadata.namespace ?? "") does not exist in this cluster; the mirror is not created (create the namespace to mirror it)"
                        : "create: \(message)")
            } catch {
                return failed(key, error)
            }
        case .update(let service):
            let key = service.key
            do {
                let written = try await client.update(service)
                record(key, written) { $0.updated += 1 }
                logger.info("updated mirror Service", metadata: ["service": "\(key)"])
            } catch {
                return failed(key, error)
            }
        case .delete(let service, let reason):
            do {
                try await client.delete(KubeService.self, namespace: service.metadata.namespace, name: service.metadata.name,
                                        resourceVersion: service.metadata.resourceVersion)
                record(service.key, nil) { $0.deleted += 1 }
                logger.info("deleted mirror Service", metadata: ["service": "\(service.key)", "reason": "\(reason)"])
            } catch KubeError.notFound {
                record(service.key, nil) { _ in }
            } catch {
                logger.debug("deleting mirror Service \(service.key): \(error); retrying")
                return !(error is CancellationError)
            }
        }
        return false
    }

    /// A failed create or update: transient ones are retried soon, others reported.
    private func failed(_ key: String, _ error: any Error) -> Bool {
        if error is CancellationError { return false }
        if let error = error as? KubeError, error.isTransient {
            logger.debug("mirror Service \(key): \(error); retrying")
            return true
        }
        problem(key, "\(error)")
        return false
    }

    /// The informer's objects overlaid with our writes it has not shown yet.
    private func effective(_ existing: [KubeService]) -> [String: KubeService] {
        var byKey: [String: KubeService] = [:]
        for service in existing { byKey[service.key] = service }
        state.withLockedValue { state in
            let now = ContinuousClock.now
            for (key, write) in state.recent {
                let seen = byKey[key]
                let caughtUp = write.object.map { seen?.metadata.resourceVersion == $0.metadata.resourceVersion } ?? (seen == nil)
                // After a few seconds the informer's word is final (someone else wrote since).
                if caughtUp || now - write.at > .seconds(10) {
                    state.recent[key] = nil
                } else {
                    byKey[key] = write.object
                }
            }
        }
        return byKey
    }

    private func record(_ key: String, _ object: KubeService?, _ count: (inout Report) -> Void) {
        state.withLockedValue { state in
            state.recent[key] = (object, .now)
            state.report.problems[key] = nil
            count(&state.report)
        }
    }

    private func problem(_ key: String, _ message: String) {
        let new = state.withLockedValue { state -> Bool in
            defer { state.report.problems[key] = message }
            return state.report.problems[key] != message
        }
        if new { logger.error("mirror Service \(key): \(message)") }
    }

    /// Whether `service` carries this agent's labels.
    static func owned(_ service: KubeService) -> Bool {
        let labels = service.metadata.labels ?? [:]
        return labels[MirrorTranslator.serviceProxyNameLabel] == MirrorTranslator.serviceProxyName
            && labels[MirrorTranslator.mirroredServiceLabel] == "true"
    }

    /// `current` changed to match `desired` (labels added, ports and type replaced; the
    /// ClusterIP kept), or nil when it already matches.
    static func updated(_ current: KubeService, toMatch desired: KubeService) -> KubeService? {
        var labels = current.metadata.labels ?? [:]
        for (key, value) in desired.metadata.labels ?? [:] { labels[key] = value }
        if desired.metadata.labels?[MirrorTranslator.clusterNameLabel] == nil { labels[MirrorTranslator.clusterNameLabel] = nil }
        let samePorts = portKeys(current.spec.ports) == portKeys(desired.spec.ports)
        guard labels != (current.metadata.labels ?? [:]) || !samePorts || (current.spec.type ?? "ClusterIP") != "ClusterIP"
                || current.spec.selector != nil else { return nil }
        var next = current
        next.metadata.labels = labels
        next.spec.ports = desired.spec.ports
        next.spec.type = "ClusterIP"
        next.spec.selector = nil
        return next
    }

    private struct PortKey: Hashable, Comparable {
        var name: String
        var proto: String
        var port: Int
        var target: String

        static func < (a: PortKey, b: PortKey) -> Bool { (a.port, a.proto, a.name) < (b.port, b.proto, b.name) }
    }

    /// Ports as the API server holds them (protocol and targetPort defaulted), in one order.
    private static func portKeys(_ ports: [KubeServicePort]?) -> [PortKey] {
        (ports ?? []).map { port in
            PortKey(name: port.name ?? "", proto: port.protocol ?? "TCP", port: port.port,
                    target: (port.targetPort ?? .int(port.port)).description)
        }.sorted()
    }
}
