import Foundation
import Logging
import MirrorModel
import NIOConcurrencyHelpers

/// What `dump` and metrics can show of the export side.
public struct KubernetesExportsStatus: Sendable, Equatable {
    /// The exported Services' and the EndpointSlices' watches have listed.
    public var servicesListed: Bool
    public var slicesListed: Bool
    public var published: Bool
    public var lastPublished: Date?
    /// In the last published document.
    public var exportedServices: Int
    public var exportedPorts: Int
    public var allocator: GatewayPortAllocator.Report
    /// What the last document left out and what the last allocation pass could not do.
    public var problems: [ExportProblem]
}

/// This cluster's exports document from the Kubernetes API: `feed --exports kubernetes`.
///
/// It watches the exported Services (``KubernetesExportsOptions/selector``, every namespace)
/// and the EndpointSlices, keeps their gateway ports allocated (``GatewayPortAllocator``: the
/// record, then the annotations the importing clusters read), and publishes the document the
/// gateways serve (``ExportsTranslator``): every port holding a gateway port, its target port
/// and the ready endpoints. A Service change runs an allocation pass, then publishes; an
/// EndpointSlice change only publishes. Nothing is published before the first pass has read
/// the record: a gateway port the record does not confirm is never served.
///
/// Every replica of the feed runs its own passes; the record's optimistic concurrency keeps
/// them from ever handing out a port twice, and they converge on the same document.
public final class KubernetesExportsSource: ExportsSource {
    private struct State {
        var allocationDue = true
        /// The next pass asks again whether unexported Services holding ports still exist.
        var recheckDue = true
        var failures = 0
        var published: ExportsDocument?
        var lastPublished: Date?
        var problems: [ExportProblem] = []
        var reported = Set<ExportProblem>()
    }

    public let options: KubernetesExportsOptions
    public let allocator: GatewayPortAllocator
    private let client: KubeClient
    private let logger: Logger
    private let services: Informer<KubeService>
    private let slices: Informer<KubeEndpointSlice>
    private let state = NIOLockedValueBox(State())
    private let selectorText: String

    /// - Throws: ``KubernetesExportsError`` listing what is wrong with `options`.
    public init(client: KubeClient, options: KubernetesExportsOptions, logger: Logger) throws {
        let problems = options.problems
        guard problems.isEmpty, let selectorText = try? options.selector.queryText() else {
            throw KubernetesExportsError(problems: problems)
        }
        self.client = client
        self.options = options
        self.logger = logger
        self.selectorText = selectorText
        var allocation = GatewayPortAllocator.Options(namespace: options.namespace)
        allocation.recordName = options.recordName
        allocation.range = options.range
        allocation.selector = options.selector
        allocation.writeQPS = options.writeQPS
        allocation.writeBurst = options.writeBurst
        allocator = GatewayPortAllocator(client: client, options: allocation, logger: logger)
        var serviceOptions = options.informer
        serviceOptions.namespace = nil
        serviceOptions.labelSelector = selectorText
        services = Informer(client: client, options: serviceOptions, logger: logger)
        var sliceOptions = options.informer
        sliceOptions.namespace = nil
        sliceOptions.labelSelector = nil
        slices = Informer(client: client, options: sliceOptions, logger: logger)
    }

    public var description: String {
        "kubernetes:\(client.connection.server.absoluteString) Services \(selectorText)"
    }

    public var status: KubernetesExportsStatus {
        let (published, lastPublished, problems) = state.withLockedValue { ($0.published, $0.lastPublished, $0.problems) }
        let report = allocator.report
        return KubernetesExportsStatus(
            servicesListed: services.health.hasSynced, slicesListed: slices.health.hasSynced, published: published != nil,
            lastPublished: lastPublished, exportedServices: published?.exports.count ?? 0,
            exportedPorts: published?.exports.reduce(0) { $0 + $1.ports.count } ?? 0,
            allocator: report, problems: report.problems + problems)
    }

    public func run(onUpdate: @escaping @Sendable (ExportsDocument) async -> Void) async throws {
        logger.info("exporting this cluster's Services", metadata: [
            "cluster": "\(options.cluster)", "selector": "\(selectorText)", "range": "\(options.range)",
            "record": "\(options.namespace)/\(options.recordName)"])
        let (changes, changed) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let (retries, retry) = AsyncStream.makeStream(of: Duration.self, bufferingPolicy: .bufferingNewest(1))
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [services] in
                await services.run { _ in
                    self.state.withLockedValue { $0.allocationDue = true }
                    changed.yield()
                }
            }
            group.addTask { [slices] in
                await slices.run { _ in changed.yield() }
            }
            group.addTask {
                // The periodic pass: ports of Services deleted while unexported are freed.
                while (try? await Task.sleep(for: self.options.resyncInterval)) != nil {
                    self.state.withLockedValue {
                        $0.allocationDue = true
                        $0.recheckDue = true
                    }
                    changed.yield()
                }
            }
            group.addTask {
                for await delay in retries {
                    guard (try? await Task.sleep(for: delay)) != nil else { return }
                    self.state.withLockedValue { $0.allocationDue = true }
                    changed.yield()
                }
            }
            group.addTask {
                for await _ in changes {
                    guard (try? await Task.sleep(for: self.options.coalescing)) != nil else { return }
                    await self.pass(onUpdate: onUpdate, retry: retry)
                }
            }
            // Every task ends only when cancelled.
            await group.next()
            group.cancelAll()
        }
        changed.finish()
        retry.finish()
        try Task.checkCancellation()
    }

    /// An allocation pass when one is due, then the document.
    private func pass(onUpdate: @Sendable (ExportsDocument) async -> Void, retry: AsyncStream<Duration>.Continuation) async {
        guard services.health.hasSynced, slices.health.hasSynced, !Task.isCancelled else { return }
        let (due, recheck) = state.withLockedValue { state in
            defer {
                state.allocationDue = false
                state.recheckDue = false
            }
            return (state.allocationDue, state.recheckDue)
        }
        if due {
            do {
                try await allocator.reconcile(services.objects, recheckUnexported: recheck)
                state.withLockedValue { $0.failures = 0 }
            } catch {
                guard !Task.isCancelled, !(error is CancellationError) else { return }
                let failures = state.withLockedValue { state in
                    state.recheckDue = state.recheckDue || recheck
                    state.failures += 1
                    return state.failures
                }
                let delay = options.retryBackoff.delay(afterFailures: failures)
                logger.warning("gateway port allocation failed; the last committed ports stay in force",
                               metadata: ["error": "\(error)", "failures": "\(failures)", "retry in": "\(delay)"])
                retry.yield(delay)
            }
        }
        await publish(onUpdate: onUpdate)
    }

    private func publish(onUpdate: @Sendable (ExportsDocument) async -> Void) async {
        guard let record = allocator.record else { return }
        let result = ExportsTranslator.translate(cluster: options.cluster, gatewayAddresses: options.gatewayAddresses,
                                                 services: services.objects, endpointSlices: slices.objects, record: record,
                                                 range: options.range)
        let document: ExportsDocument
        do {
            document = try result.document.validated(gatewayPorts: options.range)
        } catch {
            // A safety net: the translation only produces valid documents.
            logger.error("the exports document does not validate; still serving the previous one", metadata: ["error": "\(error)"])
            state.withLockedValue {
                $0.problems = result.problems + [ExportProblem(object: "exports document", message: "\(error)")]
            }
            return
        }
        let (changed, fresh) = state.withLockedValue { state -> (Bool, [ExportProblem]) in
            state.problems = result.problems
            let fresh = result.problems.filter { !state.reported.contains($0) }
            state.reported = Set(result.problems)
            guard state.published != document else { return (false, fresh) }
            state.published = document
            state.lastPublished = Date()
            return (true, fresh)
        }
        for problem in fresh { logger.notice("not exported: \(problem)") }
        guard changed else { return }
        logger.info("exports document changed", metadata: [
            "exports": "\(document.exports.count)", "ports": "\(document.exports.reduce(0) { $0 + $1.ports.count })"])
        await onUpdate(document)
    }
}

/// Options `feed --exports kubernetes` cannot run with.
public struct KubernetesExportsError: Error, CustomStringConvertible {
    public var problems: [String]
    public var description: String { problems.joined(separator: "; ") }
}
