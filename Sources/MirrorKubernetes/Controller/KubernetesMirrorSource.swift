import Foundation
import AsyncHTTPClient
import Logging
import MirrorModel
import NIOConcurrencyHelpers

/// The mirror state of real clusters: `feed --source kubernetes`.
///
/// It watches the Link objects of the local cluster, and through each Link's credentials
/// the remote cluster's exported Services and EndpointSlices; translates them
/// (``MirrorTranslator``); keeps the local mirror Services in place (only the replica
/// holding the Lease writes; the local API server allocates their ClusterIPs); and
/// publishes the state, with those ClusterIPs, as a ``MirrorSource``. The state also carries
/// the traffic policies of local services, from the local SMI TrafficSplits and the apex
/// services' EndpointSlices (``PolicyWatch``, ``PolicyTranslator``).
///
/// Every replica publishes the same state from the same watches, so the feed can run
/// several replicas; each has its own epoch, so an agent switching replicas gets a snapshot.
public final class KubernetesMirrorSource: MirrorSource {
    private struct Remote {
        var cluster: RemoteCluster
        var task: Task<Void, Never>
    }

    private struct Probe {
        var prober: GatewayProber
        var task: Task<Void, Never>
    }

    private struct State {
        var remotes: [String: Remote] = [:]
        var probes: [String: Probe] = [:]
        var store = MirrorStore()
        var published = false
        var lastPublished: Date?
        var servicesByCluster: [String: Int] = [:]
        var translation = MirrorTranslation()
        var policyTranslation = PolicyTranslation()
        var initialWaitOver = false
        var retryFailures = true
        var stopped = false
    }

    private let local: KubeClient
    private let options: KubernetesSourceOptions
    private let logger: Logger
    private let elector: LeaderElector
    private let writer: MirrorServiceWriter
    private let links: Informer<LinkerdLink>
    private let mirrors: Informer<KubeService>
    private let policyWatch = PolicyWatch()
    private let state = NIOLockedValueBox(State())
    private let plan = NIOLockedValueBox<MirrorWritePlan?>(nil)
    /// What the writer's last plan was made of; local mirror Service events and leadership
    /// changes are counted in `writerInputsChanged`.
    private struct WriterInputs: Equatable {
        var desired: [KubeService]
        var changes: Int
        var linked: Set<String>
        var unlisted: Set<String>
    }
    private let lastWriterInputs = NIOLockedValueBox<WriterInputs?>(nil)
    private let writerInputsChanged = NIOLockedValueBox(0)
    private let rebuilds: AsyncStream<Void>
    private let rebuildSignal: AsyncStream<Void>.Continuation
    private let writes: AsyncStream<Void>
    private let writeSignal: AsyncStream<Void>.Continuation
    private let statusWrites: AsyncStream<Void>
    private let statusSignal: AsyncStream<Void>.Continuation
    /// Links whose API has no status subresource (Linkerd's CRD): not written again.
    private let statusUnsupported = NIOLockedValueBox<Set<String>>([])
    /// The gateway probes' client, while `run` runs (a client must be shut down, and a
    /// source may be made and never run).
    private let probeClient = NIOLockedValueBox<HTTPClient?>(nil)

    /// The label selector of the local mirror Services.
    public static let ownedSelector = "\(MirrorTranslator.serviceProxyNameLabel)=\(MirrorTranslator.serviceProxyName),\(MirrorTranslator.mirroredServiceLabel)=true"

    /// - Parameter local: a client of the local cluster (in-cluster or `--kubeconfig`); the
    ///   source does not shut it down.
    public init(local: KubeClient, options: KubernetesSourceOptions, logger: Logger) {
        self.local = local
        self.options = options
        self.logger = logger
        elector = LeaderElector(client: local, namespace: options.linkNamespace, name: options.leaseName,
                                identity: options.identity, leaseDuration: options.leaseDuration, logger: logger)
        writer = MirrorServiceWriter(client: local, qps: options.writeQPS, burst: options.writeBurst, logger: logger)
        var linkOptions = options.informer
        linkOptions.namespace = options.linkNamespace
        linkOptions.labelSelector = nil
        links = Informer(client: local, options: linkOptions, logger: logger)
        var mirrorOptions = options.informer
        mirrorOptions.namespace = nil
        mirrorOptions.labelSelector = Self.ownedSelector
        mirrors = Informer(client: local, options: mirrorOptions, logger: logger)
        (rebuilds, rebuildSignal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        (writes, writeSignal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        (statusWrites, statusSignal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public var description: String { "kubernetes:\(local.connection.server.absoluteString) links in \(options.linkNamespace)" }

    public func run(onUpdate: @escaping @Sendable (MirrorUpdate) async -> Void) async throws {
        logger.info("following Links", metadata: ["namespace": "\(options.linkNamespace)", "identity": "\(options.identity)"])
        // One attempt per probe: failureThreshold is the retry, and a refused connection must
        // count at once, not after the client's own retries used up the probe's timeout.
        var probeConfiguration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        probeConfiguration.connectionPool.retryConnectionEstablishment = false
        let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: probeConfiguration)
        probeClient.withLockedValue { $0 = http }
        // Each long-running part ends only when cancelled; the initial wait ends early and
        // must not take the others down with it.
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { [links] in
                await links.run { _ in
                    self.followLinks()
                    self.rebuildSignal.yield()
                }
                return true
            }
            group.addTask { [mirrors] in
                await mirrors.run { _ in
                    self.writerInputsChanged.withLockedValue { $0 += 1 }
                    self.rebuildSignal.yield()
                }
                return true
            }
            group.addTask { [elector] in
                await elector.run { _ in
                    self.writerInputsChanged.withLockedValue { $0 += 1 }
                    self.rebuildSignal.yield()
                }
                return true
            }
            group.addTask { [policyWatch, local, options, logger, rebuildSignal] in
                await policyWatch.run(client: local, options: options, logger: logger) { rebuildSignal.yield() }
                return true
            }
            group.addTask {
                await self.writeLoop()
                return true
            }
            group.addTask {
                await self.statusLoop()
                return true
            }
            group.addTask {
                // Remote failures raise no event: look at the Links' status now and then.
                while (try? await Task.sleep(for: .seconds(5))) != nil { self.statusSignal.yield() }
                return true
            }
            group.addTask {
                guard (try? await Task.sleep(for: self.options.initialSyncTimeout)) != nil else { return false }
                self.state.withLockedValue { $0.initialWaitOver = true }
                self.rebuildSignal.yield()
                return false
            }
            group.addTask {
                // The periodic pass: orphans collected, failed writes retried.
                while (try? await Task.sleep(for: self.options.resyncInterval)) != nil {
                    self.state.withLockedValue { $0.retryFailures = true }
                    self.rebuildSignal.yield()
                }
                return true
            }
            group.addTask {
                for await _ in self.rebuilds {
                    try? await Task.sleep(for: self.options.coalescing)
                    guard !Task.isCancelled else { break }
                    await self.rebuild(onUpdate: onUpdate)
                }
                return true
            }
            while let essential = await group.next(), !essential {}
            group.cancelAll()
        }
        stopLinks()
        probeClient.withLockedValue { $0 = nil }
        try? await http.shutdown()
        try Task.checkCancellation()
    }

    // MARK: Links → remote clusters

    /// Cancels every remote watch and probe; no new ones start afterwards.
    private func stopLinks() {
        let tasks = state.withLockedValue { state in
            state.stopped = true
            defer {
                state.remotes = [:]
                state.probes = [:]
            }
            return state.remotes.values.map(\.task) + state.probes.values.map(\.task)
        }
        tasks.forEach { $0.cancel() }
    }

    /// Starts, restarts or stops the remote cluster watches so they match the Links.
    private func followLinks() {
        let current = Dictionary(links.objects.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        var cancelled: [Task<Void, Never>] = []
        state.withLockedValue { state in
            guard !state.stopped else { return }
            for (key, remote) in state.remotes where current[key] == nil {
                cancelled.append(remote.task)
                state.remotes[key] = nil
                logger.info("Link deleted; its mirrors go", metadata: ["link": "\(key)"])
            }
            for (key, link) in current {
                let settings = RemoteCluster.Settings(link: link)
                let old = state.remotes[key]
                if let old, old.cluster.settings == settings { continue }
                if let old { cancelled.append(old.task) }
                // A restart (other Secret, other selectors) keeps serving the old view until
                // the new watches have listed, unless what is watched changed.
                let carried = old.flatMap { $0.cluster.settings.serviceSelectors == settings.serviceSelectors ? $0.cluster.view() : nil }
                let cluster = RemoteCluster(linkKey: key, settings: settings, carrying: carried)
                let task = Task { [local, options, logger, rebuildSignal] in
                    await cluster.run(local: local, namespace: options.linkNamespace, options: options, logger: logger) {
                        rebuildSignal.yield()
                    }
                }
                state.remotes[key] = Remote(cluster: cluster, task: task)
            }
            followProbes(current, state: &state, cancelled: &cancelled)
        }
        cancelled.forEach { $0.cancel() }
    }

    /// Starts, restarts or stops the gateway probes so they match the Links' probeSpecs and
    /// gateway addresses. A restarted prober starts alive, like a new one.
    private func followProbes(_ links: [String: LinkerdLink], state: inout State, cancelled: inout [Task<Void, Never>]) {
        for (key, probe) in state.probes {
            let settings = links[key].flatMap(GatewayProber.Settings.init(link:))
            if settings != probe.prober.settings {
                cancelled.append(probe.task)
                state.probes[key] = nil
            }
        }
        guard let http = probeClient.withLockedValue({ $0 }) else { return }
        for (key, link) in links where state.probes[key] == nil {
            guard let settings = GatewayProber.Settings(link: link) else { continue }
            let dead = Set((link.status?.gateway?.addresses ?? []).filter { !$0.alive }.map(\.address))
            let prober = GatewayProber(settings: settings, dead: dead)
            let task = Task { [options, logger, rebuildSignal] in
                var logger = logger
                logger[metadataKey: "link"] = "\(key)"
                await prober.run(http: http, resolver: options.gatewayResolver, resolveInterval: options.gatewayResolveInterval,
                                 logger: logger) { rebuildSignal.yield() }
            }
            state.probes[key] = Probe(prober: prober, task: task)
        }
    }

    // MARK: Translate, publish, hand to the writer

    private func rebuild(onUpdate: @Sendable (MirrorUpdate) async -> Void) async {
        guard links.health.hasSynced, mirrors.health.hasSynced else { return }
        let linkObjects = links.objects
        let (remotes, probers) = state.withLockedValue { ($0.remotes.mapValues(\.cluster), $0.probes.mapValues(\.prober)) }
        var inputs: [MirrorLinkInput] = []
        var unlisted = Set<String>()
        var linked = Set<String>()
        for link in linkObjects {
            let view = remotes[link.key]?.view()
            if let name = link.spec.targetClusterName {
                linked.insert(name)
                if view == nil { unlisted.insert(name) }
            }
            let verdict = probers[link.key]?.verdict
            inputs.append(MirrorLinkInput(
                link: link, services: view?.services ?? [], endpointSlices: view?.endpointSlices ?? [],
                gatewayAlive: verdict?.alive ?? true, gatewayAddresses: verdict?.addresses,
                masquerade: link.metadata.annotations?[MirrorTranslator.masqueradeAnnotation] == "true"))
        }
        var clusterIPs: [String: [String]] = [:]
        let existing = mirrors.objects
        for service in existing {
            clusterIPs[service.key] = service.spec.allocatedClusterIPs
        }
        let translation = MirrorTranslator.translate(inputs, localClusterIPs: clusterIPs)
        var mirrorState = translation.state(clusterDomain: options.clusterDomain)
        // Policies of local services; a split whose apex's slices are not listed yet waits.
        let policyView = policyWatch.view()
        let policies = policyView.map { view in
            PolicyTranslator.translate(PolicyInput(
                trafficSplits: view.trafficSplits.filter { PolicyTranslator.apexKey($0).map { !view.pendingApexes.contains($0) } ?? true },
                localServices: view.services, localEndpointSlices: view.endpointSlices, state: mirrorState))
        } ?? PolicyTranslation()
        mirrorState.policies = policies.policies

        let retry = state.withLockedValue { state in
            defer { state.retryFailures = false }
            return state.retryFailures
        }
        // The writer compares every mirror Service: skip it when nothing it looks at moved
        // (an endpoint change, the common case, never alters a local Service).
        let writerInputs = WriterInputs(desired: translation.mirrorServices, changes: writerInputsChanged.withLockedValue { $0 },
                                        linked: linked, unlisted: unlisted)
        let unchanged = lastWriterInputs.withLockedValue { last in
            defer { last = writerInputs }
            return last == writerInputs
        }
        if !unchanged || retry {
            plan.withLockedValue {
                $0 = MirrorWritePlan(desired: translation.mirrorServices, existing: existing, linkedClusters: linked,
                                     unlistedClusters: unlisted, retryFailures: retry || ($0?.retryFailures ?? false))
            }
            writeSignal.yield()
        }

        let (store, published, waitOver) = state.withLockedValue { state in
            state.translation = translation
            state.policyTranslation = policies
            return (state.store, state.published, state.initialWaitOver)
        }
        if !published, !unlisted.isEmpty, !waitOver {
            logger.debug("waiting for remote clusters before the first publication", metadata: ["waiting": "\(unlisted.sorted())"])
            return
        }
        if !published, policyView == nil, !waitOver {
            logger.debug("waiting for the TrafficSplits and the local Services before the first publication")
            return
        }
        var next = store
        let changes: ChangeSet
        do {
            changes = try next.applySnapshot(mirrorState, revision: store.revision + 1)
        } catch {
            logger.error("the translated state does not validate; still serving the previous one", metadata: ["error": "\(error)"])
            return
        }
        guard !published || !changes.isEmpty else { return }
        if !published, !unlisted.isEmpty {
            logger.warning("publishing without clusters that could not be listed yet; their mirror Services are kept",
                           metadata: ["clusters": "\(unlisted.sorted())"])
        }
        state.withLockedValue { state in
            state.store = next
            state.published = true
            state.lastPublished = Date()
            state.servicesByCluster = next.serviceCountsByCluster()
        }
        await onUpdate(MirrorUpdate(store: next, changes: changes))
        statusSignal.yield()
    }

    private func writeLoop() async {
        for await _ in writes {
            guard elector.isLeader else { continue }
            guard let next = plan.withLockedValue({ box -> MirrorWritePlan? in
                defer { box?.retryFailures = false }
                return box
            }) else { continue }
            let retry = await writer.reconcile(next, mayWrite: { [elector] in elector.isLeader })
            if retry {
                try? await Task.sleep(for: .seconds(1))
                lastWriterInputs.withLockedValue { $0 = nil }
                rebuildSignal.yield()
            }
        }
    }

    // MARK: Link status

    /// Writes each Link's `.status` (leader only) when its meaningful part changes: at once
    /// for the remote watch's state and the gateway's liveness, at most every 10 s for the
    /// service count alone (a large Link being mirrored changes it at every publication).
    private func statusLoop() async {
        var countWritten: [String: ContinuousClock.Instant] = [:]
        for await _ in statusWrites {
            guard elector.isLeader else { continue }
            let current = status
            for link in links.objects {
                guard !statusUnsupported.withLockedValue({ $0.contains(link.key) }),
                      let entry = current.links.first(where: { $0.link == link.key }) else { continue }
                let next = Self.linkStatus(entry, identity: options.identity)
                let old = link.status.map(Self.meaningful)
                guard Self.meaningful(next) != old else { continue }
                var withOldCount = Self.meaningful(next)
                withOldCount.servicesMirrored = old?.servicesMirrored
                if withOldCount == old, let last = countWritten[link.key], ContinuousClock.now - last < .seconds(10) {
                    // Only the count moved, and it was written recently: the ticker comes back.
                    continue
                }
                countWritten[link.key] = .now
                var updated = link
                updated.status = next
                do {
                    _ = try await local.updateStatus(updated)
                } catch KubeError.notFound {
                    statusUnsupported.withLockedValue { _ = $0.insert(link.key) }
                    logger.info("Link \(link.key) has no status subresource (not mirror-agent's CRD); its status is in dump --feed only")
                } catch is CancellationError {
                    return
                } catch {
                    logger.debug("Link \(link.key) status: \(error)")
                }
            }
        }
    }

    static func linkStatus(_ entry: KubernetesSourceStatus.Link, identity: String) -> LinkStatus {
        let gateway = entry.gateway.map { probe in
            LinkStatus.Gateway(alive: probe.alive, addresses: probe.addresses.map { address in
                LinkStatus.GatewayAddress(address: address.address, alive: address.alive,
                                          latencyMilliseconds: address.lastLatencyMilliseconds.map { Int($0.rounded()) },
                                          lastError: address.lastError)
            })
        }
        return LinkStatus(remote: LinkStatus.Remote(connected: entry.connected, synced: entry.synced, stale: entry.stale,
                                                    lastError: entry.lastError),
                          gateway: gateway, servicesMirrored: entry.servicesMirrored, observedBy: identity,
                          updateTime: KubeTime.microTime(Date()))
    }

    /// The status without what changes at every probe (latency, time, writer).
    static func meaningful(_ status: LinkStatus) -> LinkStatus {
        var status = status
        status.updateTime = nil
        status.observedBy = nil
        if var gateway = status.gateway {
            gateway.addresses = gateway.addresses.map { address in
                var address = address
                address.latencyMilliseconds = nil
                return address
            }
            status.gateway = gateway
        }
        return status
    }

    // MARK: Status

    public var status: KubernetesSourceStatus {
        let (remotes, probers, translation, published, lastPublished, byCluster, services, policies, policySkips) = state.withLockedValue {
            ($0.remotes.mapValues(\.cluster), $0.probes.mapValues(\.prober), $0.translation, $0.published, $0.lastPublished,
             $0.servicesByCluster, $0.store.services.count, $0.store.policies.count, $0.policyTranslation.skipped)
        }
        // TrafficSplits first: they are few, and would otherwise hide behind many mirror skips.
        let skipped = policySkips.prefix(100).map(\.description)
            + translation.skipped.prefix(max(0, 100 - policySkips.count)).map(\.description)
        let report = writer.report
        let linkStatus = links.objects.map { link -> KubernetesSourceStatus.Link in
            let health = remotes[link.key]?.health
            let synced = health?.synced ?? false
            let connected = health?.connected ?? false
            return KubernetesSourceStatus.Link(
                link: link.key, cluster: link.spec.targetClusterName, connected: connected, synced: synced,
                stale: synced && !connected, lastEvent: health?.lastEvent, lastError: health?.lastError,
                servicesMirrored: link.spec.targetClusterName.flatMap { byCluster[$0] } ?? 0,
                gateway: probers[link.key]?.status)
        }
        return KubernetesSourceStatus(
            identity: options.identity, leader: elector.status, linksListed: links.health.hasSynced, links: linkStatus,
            published: published, lastPublished: lastPublished, servicesPublished: services,
            mirrorServicesDesired: translation.mirrorServices.count, created: report.created, updated: report.updated,
            deleted: report.deleted, writeProblems: report.problems,
            skipped: skipped, skippedCount: policySkips.count + translation.skipped.count, policies: policies,
            trafficSplits: policyWatch.availability)
    }
}
