import Foundation
import Logging
import MirrorModel
import NIOConcurrencyHelpers

/// Hands out a stable gateway port per port of every exported Service of this cluster, and
/// writes them on each Service as the `mirror-agent.io/gateway-ports` annotation that the
/// importing clusters read (``MirrorTranslator/gatewayPortsAnnotation``).
///
/// The truth is the allocation record (``GatewayPortRecord``, a ConfigMap in the feed's
/// namespace). A pass reads it, decides (``GatewayPortPlanner``) and replaces it with the
/// resourceVersion it read: when another allocator (a second feed replica, or this one before
/// a restart) wrote in between, the API server refuses with 409 and the pass starts over from
/// what that one wrote. So no two allocators ever both hand out a port, whatever runs at once.
/// Only once the record is committed are the annotations written, each with the Service's
/// resourceVersion, and only on the Service instance (uid) the record names.
///
/// A port is freed only when its Service is gone, which is asked of the API server (GET)
/// after reading the record and never inferred from a watch cache or from a failure: any
/// doubt keeps the port.
public final class GatewayPortAllocator: Sendable {
    public struct Options: Sendable {
        /// Namespace and name of the allocation record.
        public var namespace: String
        public var recordName = GatewayPortRecord.defaultName
        public var range = GatewayPortRange.default
        /// The exported Services' selector: an annotation is written only on a Service that
        /// still matches it when read back.
        public var selector = MirrorTranslator.defaultSelector
        /// Record writes refused (409) before a pass gives up (the next pass starts over).
        public var maxAttempts = 20
        /// Annotation writes per second, and the burst allowed.
        public var writeQPS: Double = 50
        public var writeBurst = 100

        public init(namespace: String) {
            self.namespace = namespace
        }
    }

    /// What `dump` and the tests see.
    public struct Report: Sendable, Equatable {
        /// Ports held in the record after the last pass.
        public var portsInUse = 0
        public var allocated = 0
        public var freed = 0
        public var annotationsWritten = 0
        /// Record writes refused because another allocator wrote first.
        public var conflicts = 0
        public var passes = 0
        public var lastPass: Date?
        /// The last pass's failure (the API unreachable, …); nil after a good pass.
        public var lastError: String?
        /// What the last pass could not do, naming the Service.
        public var problems: [ExportProblem] = []
    }

    private struct State {
        var record: GatewayPortRecord?
        var report = Report()
        var reported = Set<ExportProblem>()
        /// Instances outside the exported set that a GET found alive: not asked again until a
        /// pass with `recheckUnexported` (keeping a port longer is always safe).
        var confirmedAlive = Set<ServiceInstance>()
    }

    public let options: Options
    private let client: KubeClient
    private let logger: Logger
    private let limiter: WriteRateLimiter
    private let state = NIOLockedValueBox(State())

    /// Annotation writes in flight at once.
    static let concurrency = 8

    public init(client: KubeClient, options: Options, logger: Logger) {
        self.client = client
        self.options = options
        self.logger = logger
        limiter = WriteRateLimiter(qps: options.writeQPS, burst: options.writeBurst)
    }

    /// The record as last read or committed; nil before the first good pass.
    public var record: GatewayPortRecord? { state.withLockedValue { $0.record } }

    public var report: Report { state.withLockedValue { $0.report } }

    private var recordObject: String { "ConfigMap \(options.namespace)/\(options.recordName)" }

    /// One pass over `services` (the exported Services, from a listed informer): frees the
    /// ports of Services that are gone, hands out the missing ones, commits the record, then
    /// writes the annotations that differ. Returns the committed record.
    ///
    /// Whether a Service the record names but `services` lacks still exists is asked of the
    /// API server; with `recheckUnexported` false, only for those not found alive before (an
    /// unexported Service deleted since is then freed by the next pass that rechecks: the
    /// exports source's periodic one).
    ///
    /// - Throws: when the record cannot be read or written (nothing is half-done then: the
    ///   annotations are only written from a committed record), or on cancellation.
    @discardableResult
    public func reconcile(_ services: [KubeService], recheckUnexported: Bool = true) async throws -> GatewayPortRecord {
        var problems: [ExportProblem] = []
        let candidates = services.compactMap { ExportCandidate.make($0, problems: &problems) }
        let committed: GatewayPortRecord
        if recheckUnexported { state.withLockedValue { $0.confirmedAlive = [] } }
        do {
            let plan = try await commit(candidates)
            committed = plan.record
            problems += plan.problems
            problems += committed.problems.map { ExportProblem(object: recordObject, message: $0) }
        } catch {
            state.withLockedValue {
                $0.report.passes += 1
                $0.report.lastPass = Date()
                $0.report.lastError = "\(error)"
            }
            throw error
        }
        state.withLockedValue {
            $0.record = committed
            $0.report.portsInUse = committed.owners.count
        }
        problems += await writeAnnotations(candidates, record: committed)
        let fresh = state.withLockedValue { state in
            state.report.passes += 1
            state.report.lastPass = Date()
            state.report.lastError = nil
            state.report.problems = problems
            let fresh = problems.filter { !state.reported.contains($0) }
            state.reported = Set(problems)
            return fresh
        }
        for problem in fresh { logger.error("\(problem)") }
        return committed
    }

    // MARK: The record

    /// Reads, plans and writes the record until a write goes through.
    private func commit(_ candidates: [ExportCandidate]) async throws -> GatewayPortPlan {
        var conflicts = 0
        while true {
            try Task.checkCancellation()
            let (record, object) = try await readRecord()
            let gone = try await goneInstances(record, candidates: candidates)
            let plan = GatewayPortPlanner.plan(record: record, candidates: candidates, gone: gone, range: options.range)
            if plan.record == record {
                state.withLockedValue { $0.report.conflicts += conflicts }
                return plan
            }
            do {
                try await write(plan.record, over: object)
            } catch let error as KubeError {
                switch error {
                case .conflict, .alreadyExists:
                    conflicts += 1
                    guard conflicts < options.maxAttempts else {
                        state.withLockedValue { $0.report.conflicts += conflicts }
                        throw KubeError.conflict(KubeStatus(message: "\(recordObject) changed under \(conflicts) writes in a row; the next pass tries again",
                                                            reason: "Conflict", code: 409))
                    }
                    logger.debug("\(recordObject) was written by someone else; planning again", metadata: ["attempt": "\(conflicts)"])
                    // Allocators racing in lockstep would collide again: wait a little, at random.
                    try await Task.sleep(for: .milliseconds(Int.random(in: 1...(5 * min(conflicts, 10)))))
                    continue
                default:
                    throw error
                }
            }
            state.withLockedValue { state in
                state.report.conflicts += conflicts
                state.report.allocated += plan.allocated
                state.report.freed += plan.freed
            }
            for change in plan.changes { logger.info("gateway ports: \(change)") }
            return plan
        }
    }

    private func readRecord() async throws -> (GatewayPortRecord, KubeConfigMap?) {
        do {
            let object = try await client.get(KubeConfigMap.self, namespace: options.namespace, name: options.recordName)
            return (GatewayPortRecord(data: object.data), object)
        } catch KubeError.notFound {
            return (GatewayPortRecord(), nil)
        }
    }

    /// Creates the record, or replaces it with the resourceVersion it was read at.
    private func write(_ record: GatewayPortRecord, over object: KubeConfigMap?) async throws {
        guard var object else {
            _ = try await client.create(KubeConfigMap(
                metadata: ObjectMeta(name: options.recordName, namespace: options.namespace,
                                     labels: ["app.kubernetes.io/managed-by": "mirror-agent"],
                                     annotations: ["mirror-agent.io/description": "gateway port -> namespace/service/port of this cluster's exported Services; written by mirror-agent feed --exports kubernetes, do not edit"]),
                data: record.data))
            return
        }
        object.data = record.data
        _ = try await client.update(object)
    }

    /// The Service instances the record names that no longer exist: asked of the API server
    /// for every instance the informer does not show alive.
    private func goneInstances(_ record: GatewayPortRecord, candidates: [ExportCandidate]) async throws -> Set<ServiceInstance> {
        let alive = Dictionary(candidates.map { ($0.key, $0.uid) }, uniquingKeysWith: { first, _ in first })
        let instances = Set(record.owners.values.map { ServiceInstance(key: $0.serviceKey, uid: $0.uid) })
        var gone = Set<ServiceInstance>()
        for instance in instances.sorted(by: { ($0.key, $0.uid ?? "") < ($1.key, $1.uid ?? "") }) {
            if let uid = alive[instance.key], instance.uid == nil || instance.uid == uid { continue }
            // (A Service of that name among the exported ones is another instance: ask.)
            if alive[instance.key] == nil, state.withLockedValue({ $0.confirmedAlive.contains(instance) }) { continue }
            guard let owner = record.owners.values.first(where: { $0.serviceKey == instance.key && $0.uid == instance.uid }) else { continue }
            do {
                let current = try await client.get(KubeService.self, namespace: owner.namespace, name: owner.name)
                // A uid never comes back: another one means the recorded instance was deleted.
                if let uid = instance.uid, let currentUID = current.metadata.uid, uid != currentUID {
                    gone.insert(instance)
                } else {
                    state.withLockedValue { _ = $0.confirmedAlive.insert(instance) }
                }
            } catch KubeError.notFound {
                gone.insert(instance)
            }
        }
        return gone
    }

    // MARK: Annotations

    /// Writes the annotation of every candidate whose text differs from the record's.
    private func writeAnnotations(_ candidates: [ExportCandidate], record: GatewayPortRecord) async -> [ExportProblem] {
        let pending = candidates.filter { candidate in
            guard candidate.service.metadata.deletionTimestamp == nil else { return false }
            if case .malformed = candidate.annotation { return false }
            guard let wanted = Self.annotation(for: candidate, record: record) else { return false }
            return wanted != currentText(candidate.service)
        }
        guard !pending.isEmpty else { return [] }
        let problems = NIOLockedValueBox<[ExportProblem]>([])
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            for candidate in pending {
                guard !Task.isCancelled else { break }
                if running == Self.concurrency {
                    await group.next()
                    running -= 1
                }
                group.addTask {
                    if let problem = await self.writeAnnotation(candidate, record: record) {
                        problems.withLockedValue { $0.append(problem) }
                    }
                }
                running += 1
            }
        }
        return problems.withLockedValue { $0 }.sorted { $0.object < $1.object }
    }

    private func currentText(_ service: KubeService) -> String? {
        service.metadata.annotations?[MirrorTranslator.gatewayPortsAnnotation]
    }

    /// The annotation text the record gives `candidate`: `.some(nil)` when it should have none;
    /// nil when the record's entries are another instance's (nothing is written then).
    static func annotation(for candidate: ExportCandidate, record: GatewayPortRecord) -> String?? {
        if record.ports(ofService: candidate.key).contains(where: { !$0.owner.belongs(to: candidate.uid) }) { return nil }
        var ports: [(key: String, gatewayPort: Int)] = []
        for key in candidate.portKeys {
            if let port = record.port(namespace: candidate.namespace, name: candidate.name, portKey: key, uid: candidate.uid) {
                ports.append((key, port))
            }
        }
        return .some(GatewayPortsAnnotation.render(ports))
    }

    /// Reads the Service back and writes its annotation with the resourceVersion read,
    /// again on a conflict; nothing when it changed meanwhile in a way that makes the write
    /// wrong (another instance, no longer exported, being deleted, an unreadable annotation).
    private func writeAnnotation(_ candidate: ExportCandidate, record: GatewayPortRecord) async -> ExportProblem? {
        for _ in 0..<5 {
            do {
                var raw = try await client.get(RawKubeObject<KubeService>.self, namespace: candidate.namespace, name: candidate.name)
                let service = try raw.decoded()
                guard service.metadata.uid == candidate.uid, service.metadata.deletionTimestamp == nil,
                      (try? options.selector.matches(service.metadata.labels)) == true else { return nil }
                var problems: [ExportProblem] = []
                guard let fresh = ExportCandidate.make(service, problems: &problems) else { return nil }
                if case .malformed = fresh.annotation { return nil }
                guard let wanted = Self.annotation(for: fresh, record: record) else { return nil }
                let current = currentText(service)
                guard wanted != current else { return nil }
                var annotations = raw.metadata.annotations ?? [:]
                annotations[MirrorTranslator.gatewayPortsAnnotation] = wanted
                raw.metadata.annotations = annotations.isEmpty ? nil : annotations
                try await limiter.acquire()
                _ = try await client.update(raw)
                state.withLockedValue { $0.report.annotationsWritten += 1 }
                logger.info("wrote the gateway ports of Service \(candidate.key)",
                            metadata: ["annotation": "\(wanted ?? "(removed)")", "previous": "\(current ?? "(none)")"])
                return nil
            } catch KubeError.conflict {
                continue
            } catch KubeError.notFound {
                return nil
            } catch is CancellationError {
                return nil
            } catch {
                return ExportProblem(object: candidate.object, message: "cannot write annotation \(MirrorTranslator.gatewayPortsAnnotation): \(error)")
            }
        }
        return ExportProblem(object: candidate.object,
                             message: "cannot write annotation \(MirrorTranslator.gatewayPortsAnnotation): the Service kept changing; the next pass tries again")
    }
}
