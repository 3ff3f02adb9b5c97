import Foundation
import Logging
import NIOConcurrencyHelpers

/// What one remote cluster's informers hold, once complete.
struct RemoteView: Sendable {
    var services: [KubeService]
    var endpointSlices: [KubeEndpointSlice]
}

/// How a remote cluster's watches are doing, for status and for the safety rules (no
/// deletion on behalf of a cluster that has never been listed).
struct RemoteHealth: Sendable {
    /// Every watch of the cluster has been listed at least once (now or before a restart).
    var synced: Bool
    /// Every watch is working: listed, and no failure since.
    var connected: Bool
    var lastEvent: Date?
    var lastError: String?
}

/// One Link's remote cluster: the credentials Secret the Link names, a client built from
/// its kubeconfig, and list-then-watch of the remote Services (one informer per distinct
/// Link selector: the API has no OR of selectors) and EndpointSlices.
///
/// A cluster that cannot be reached keeps the last complete view: the informers never
/// empty their caches on failure, and when the Secret changes (rotated credentials) the
/// old view stays in use until the new informers have listed.
final class RemoteCluster: Sendable {
    /// What the informers depend on; a Link change touching any of it restarts them.
    struct Settings: Hashable, Sendable {
        var secretName: String?
        /// The `labelSelector` texts to watch Services with; nil = every Service.
        var serviceSelectors: [String?]

        init(link: LinkerdLink) {
            secretName = link.spec.clusterCredentialsSecret?.nilIfEmpty
            let selectors = [
                link.spec.selector ?? MirrorTranslator.defaultSelector,
                link.spec.remoteDiscoverySelector ?? MirrorTranslator.defaultRemoteDiscoverySelector,
                link.spec.federatedServiceSelector ?? MirrorTranslator.defaultFederatedServiceSelector,
            ]
            // An unusable selector matches nothing (the translator reports it); an empty one
            // matches everything, so one unfiltered watch then covers all of them.
            var texts: [String?] = []
            for selector in selectors {
                guard let text = try? selector.queryText() else {
                    if selector.isEmpty { texts = [nil]; break }
                    continue
                }
                if !texts.contains(text) { texts.append(text) }
            }
            serviceSelectors = texts
        }
    }

    private struct State {
        var serviceInformers: [Informer<KubeService>] = []
        var sliceInformer: Informer<KubeEndpointSlice>?
        /// The view of the previous informers (before a restart), used until the new ones list.
        var carried: RemoteView?
        var credentialsError: String?
    }

    let linkKey: String
    let settings: Settings
    private let state: NIOLockedValueBox<State>

    init(linkKey: String, settings: Settings, carrying view: RemoteView? = nil) {
        self.linkKey = linkKey
        self.settings = settings
        state = NIOLockedValueBox(State(carried: view))
    }

    /// The cluster's Services and EndpointSlices, or nil when it was never listed.
    func view() -> RemoteView? {
        let (services, slices, carried) = state.withLockedValue { ($0.serviceInformers, $0.sliceInformer, $0.carried) }
        return Self.view(services: services, slices: slices) ?? carried
    }

    private static func view(services: [Informer<KubeService>], slices: Informer<KubeEndpointSlice>?) -> RemoteView? {
        guard let slices,
              services.allSatisfy(\.health.hasSynced), slices.health.hasSynced else { return nil }
        var seen = Set<String>()
        var merged: [KubeService] = []
        for informer in services {
            for service in informer.objects where seen.insert(service.key).inserted { merged.append(service) }
        }
        return RemoteView(services: merged, endpointSlices: slices.objects)
    }

    var health: RemoteHealth {
        let (informers, credentialsError, carried) = state.withLockedValue { state -> ([InformerHealth], String?, Bool) in
            (state.serviceInformers.map(\.health) + (state.sliceInformer.map { [$0.health] } ?? []),
             state.credentialsError, state.carried != nil)
        }
        let listed = !informers.isEmpty && informers.allSatisfy(\.hasSynced)
        let failing = informers.contains { $0.consecutiveFailures > 0 }
        let lastEvent = informers.compactMap { [$0.lastEventTime, $0.lastSyncTime].compactMap { $0 }.max() }.max()
        let lastError = credentialsError ?? informers.filter { $0.consecutiveFailures > 0 }.compactMap(\.lastError).first
        return RemoteHealth(synced: listed || carried, connected: listed && !failing && credentialsError == nil,
                            lastEvent: lastEvent, lastError: lastError)
    }

    /// Reads the credentials, watches, and starts again when the Secret changes, until
    /// cancelled. `changed` is called after every change the informers see.
    func run(local: KubeClient, namespace: String, options: KubernetesSourceOptions, logger: Logger,
             changed: @escaping @Sendable () -> Void) async {
        let logger = {
            var logger = logger
            logger[metadataKey: "link"] = "\(linkKey)"
            return logger
        }()
        var failures = 0
        while !Task.isCancelled {
            guard let secretName = settings.secretName else {
                fail("the Link has no spec.clusterCredentialsSecret", logger: logger, changed: changed)
                guard await sleep(options.resyncInterval) else { return }
                continue
            }
            let client: KubeClient
            let secretVersion: String?
            do {
                let secret = try await local.get(KubeSecret.self, namespace: namespace, name: secretName)
                secretVersion = secret.metadata.resourceVersion
                var clientOptions = KubeClientOptions()
                clientOptions.allowPlainHTTP = options.allowPlainHTTPRemotes
                client = try KubeClient(connection: try secret.kubeconfig().connection(), options: clientOptions, logger: logger)
            } catch {
                guard !Task.isCancelled else { return }
                failures += 1
                let reason = if case KubeError.notFound = error { "not found" } else { "\(error)" }
                fail("credentials Secret \(namespace)/\(secretName): \(reason)", logger: logger, changed: changed)
                guard await sleep(options.informer.backoff.delay(afterFailures: failures)) else { return }
                continue
            }
            failures = 0
            logger.info("watching the remote cluster", metadata: ["server": "\(client.connection.server.absoluteString)"])
            await watch(with: client, options: options, logger: logger, changed: changed) {
                // Credentials rotate by editing the Secret: look at it again now and then.
                while !Task.isCancelled {
                    guard await self.sleep(min(options.resyncInterval, .seconds(60))) else { return }
                    if let secret = try? await local.get(KubeSecret.self, namespace: namespace, name: secretName),
                       secret.metadata.resourceVersion != secretVersion {
                        logger.info("credentials Secret changed; connecting again")
                        return
                    }
                }
            }
            try? await client.shutdown()
        }
    }

    /// Runs fresh informers against `client` until `until` returns or the task is cancelled.
    private func watch(with client: KubeClient, options: KubernetesSourceOptions, logger: Logger,
                       changed: @escaping @Sendable () -> Void, until: @escaping @Sendable () async -> Void) async {
        let services = settings.serviceSelectors.map { selector -> Informer<KubeService> in
            var informerOptions = options.informer
            informerOptions.namespace = nil
            informerOptions.labelSelector = selector
            return Informer<KubeService>(client: client, options: informerOptions, logger: logger)
        }
        var sliceOptions = options.informer
        sliceOptions.namespace = nil
        sliceOptions.labelSelector = nil
        let slices = Informer<KubeEndpointSlice>(client: client, options: sliceOptions, logger: logger)
        state.withLockedValue { state in
            // Keep serving the previous informers' view until these have listed.
            if let previous = Self.view(services: state.serviceInformers, slices: state.sliceInformer) {
                state.carried = previous
            }
            state.serviceInformers = services
            state.sliceInformer = slices
            state.credentialsError = nil
        }
        changed()
        await withTaskGroup(of: Void.self) { group in
            for informer in services {
                group.addTask { await informer.run { _ in changed() } }
            }
            group.addTask { await slices.run { _ in changed() } }
            group.addTask { await until() }
            await group.next()
            group.cancelAll()
        }
    }

    private func fail(_ message: String, logger: Logger, changed: @Sendable () -> Void) {
        let first = state.withLockedValue { state -> Bool in
            defer { state.credentialsError = message }
            return state.credentialsError != message
        }
        if first {
            logger.error("\(message); the cluster's mirrors are kept as they are")
            changed()
        }
    }

    private func sleep(_ duration: Duration) async -> Bool {
        do {
            try await Task.sleep(for: duration)
            return true
        } catch {
            return false
        }
    }
}
