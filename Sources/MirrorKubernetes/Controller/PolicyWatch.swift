import Foundation
import Logging
import NIOConcurrencyHelpers

/// The local inputs of the traffic policies, once complete: the local TrafficSplits, the
/// local Services (the apex services are looked up among them) and the EndpointSlices of
/// the apex services.
struct PolicyView: Sendable {
    var trafficSplits: [TrafficSplit]
    var services: [KubeService]
    var endpointSlices: [KubeEndpointSlice]
    /// Apex services (`namespace/name`) whose EndpointSlices are not listed yet (the slice
    /// watch is being restarted to include them): their splits wait, rather than being
    /// published with a readiness that is not known.
    var pendingApexes: Set<String>
}

/// Whether the local API serves TrafficSplits (SMI's CRD is optional).
public enum TrafficSplitAvailability: String, Sendable, Codable, Equatable {
    /// Not asked yet, or the answers so far were failures other than 404, 401 and 403.
    case unknown
    /// The API answers 404 for the resource: no CRD, so no policies.
    case absent
    /// The API answers 401/403: the feed may not list them (RBAC without trafficsplits), so
    /// no policies.
    case forbidden
    case served
}

/// Local TrafficSplits (all namespaces), the local Services, and the EndpointSlices of the
/// apex services, for the policy translation (``PolicyTranslator``).
///
/// SMI's TrafficSplit CRD is not part of Kubernetes: when the API answers 404 for it (or 403,
/// RBAC without trafficsplits), that is logged once, there are no policies, and the resource
/// is asked for again every `trafficSplitRetryInterval`; a CRD deleted while watched is
/// noticed within that interval (at most 5 s) of its watch failing.
///
/// The EndpointSlices are watched by label (`kubernetes.io/service-name in (…)`, the apex
/// names), not all of them: a change of the set of apex names restarts that watch, and the
/// previous watch's slices stay in use until the new one has listed.
final class PolicyWatch: Sendable {
    private struct State {
        var availability = TrafficSplitAvailability.unknown
        var splits: Informer<TrafficSplit>?
        var services: Informer<KubeService>?
        /// The slice watch and the apex keys its selector covers.
        var slices: Informer<KubeEndpointSlice>?
        var slicesCover: Set<String> = []
        /// The last complete slices and their apex keys, from the watch before a restart.
        var carriedSlices: [KubeEndpointSlice] = []
        var carriedCover: Set<String> = []
        /// `namespace/name` of every apex service the splits name.
        var apexes: Set<String> = []
    }

    private let state = NIOLockedValueBox(State())

    var availability: TrafficSplitAvailability { state.withLockedValue { $0.availability } }

    /// The complete inputs; nil until it is known whether TrafficSplits are served and, when
    /// they are, until the splits and the Services have been listed. Empty when not served.
    func view() -> PolicyView? {
        let (availability, splits, services, slices, cover, carried, carriedCover) = state.withLockedValue {
            ($0.availability, $0.splits, $0.services, $0.slices, $0.slicesCover, $0.carriedSlices, $0.carriedCover)
        }
        switch availability {
        case .unknown: return nil
        case .absent, .forbidden: return PolicyView(trafficSplits: [], services: [], endpointSlices: [], pendingApexes: [])
        case .served: break
        }
        guard let splits, splits.health.hasSynced, let services, services.health.hasSynced else { return nil }
        let trafficSplits = splits.objects
        // The splits as listed now (the slice watch may not have caught up with them yet).
        let apexes = Set(trafficSplits.compactMap(PolicyTranslator.apexKey))
        // Only the apex Services: looked up by key, not a copy of every Service of the cluster.
        let apexServices = apexes.sorted().compactMap { services.object(forKey: $0) }
        let endpointSlices: [KubeEndpointSlice]
        let covered: Set<String>
        if let slices, slices.health.hasSynced {
            endpointSlices = slices.objects
            covered = cover
        } else {
            endpointSlices = carried
            covered = carriedCover
        }
        return PolicyView(trafficSplits: trafficSplits, services: apexServices, endpointSlices: endpointSlices,
                          pendingApexes: apexes.subtracting(covered))
    }

    /// Follows the local cluster until cancelled; `changed` after every change that matters.
    func run(client: KubeClient, options: KubernetesSourceOptions, logger: Logger, changed: @escaping @Sendable () -> Void) async {
        var failures = 0
        while !Task.isCancelled {
            do {
                _ = try await client.list(TrafficSplit.self, namespace: nil, options: ListOptions(limit: 1))
            } catch KubeError.notFound {
                failures = 0
                setUnavailable(.absent, logger: logger, retry: options.trafficSplitRetryInterval, changed: changed)
                guard await Self.sleep(options.trafficSplitRetryInterval) else { return }
                continue
            } catch KubeError.unauthorized(let status) {
                failures = 0
                setUnavailable(.forbidden, reason: "\(status)", logger: logger, retry: options.trafficSplitRetryInterval, changed: changed)
                guard await Self.sleep(options.trafficSplitRetryInterval) else { return }
                continue
            } catch {
                guard !Task.isCancelled else { return }
                failures += 1
                if failures == 1 { logger.warning("cannot list TrafficSplits: \(error); trying again") }
                guard await Self.sleep(options.informer.backoff.delay(afterFailures: failures)) else { return }
                continue
            }
            failures = 0
            logger.info("following TrafficSplits (\(TrafficSplit.resource.apiVersion)) for traffic policies")
            await follow(client: client, options: options, logger: logger, changed: changed)
        }
    }

    /// No TrafficSplits to read (`absent` or `forbidden`): no policies; logged once per change.
    private func setUnavailable(_ availability: TrafficSplitAvailability, reason: String? = nil, logger: Logger, retry: Duration,
                                changed: @Sendable () -> Void) {
        let first = state.withLockedValue { state -> Bool in
            defer {
                state.availability = availability
                state.splits = nil
                state.services = nil
                state.slices = nil
                state.slicesCover = []
                state.carriedSlices = []
                state.carriedCover = []
                state.apexes = []
            }
            return state.availability != availability
        }
        guard first else { return }
        if availability == .forbidden {
            logger.warning("may not list TrafficSplits (\(TrafficSplit.resource.apiVersion): \(reason ?? "forbidden"); the feed's RBAC lacks trafficsplits.split.smi-spec.io): no traffic policies; asking again every \(retry)")
        } else {
            logger.info("the API serves no TrafficSplits (\(TrafficSplit.resource.apiVersion): 404, SMI's CRD is not installed): no traffic policies; looking again every \(retry)")
        }
        changed()
    }

    /// Watches splits, Services and apex slices until cancelled or until the TrafficSplit
    /// resource is found gone or forbidden (the caller's probe then records which).
    private func follow(client: KubeClient, options: KubernetesSourceOptions, logger: Logger,
                        changed: @escaping @Sendable () -> Void) async {
        var everywhere = options.informer
        everywhere.namespace = nil
        everywhere.labelSelector = nil
        let splits = Informer<TrafficSplit>(client: client, options: everywhere, logger: logger)
        let services = Informer<KubeService>(client: client, options: everywhere, logger: logger)
        state.withLockedValue { state in
            state.availability = .served
            state.splits = splits
            state.services = services
        }
        changed()
        let (selectors, selectorSignal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await splits.run { _ in
                    // The apex set may have changed: the slice watch follows it (a no-op when not).
                    selectorSignal.yield()
                    changed()
                }
            }
            group.addTask {
                await services.run { event in
                    // Only apex services matter; every other Service change is ignored.
                    let key: String? = switch event {
                    case .added(let service), .deleted(let service): service.key
                    case .updated(_, let service): service.key
                    case .synced: nil
                    }
                    if let key, !self.state.withLockedValue({ $0.apexes.contains(key) }) { return }
                    changed()
                }
            }
            group.addTask {
                await self.followSlices(client: client, options: options, logger: logger, signals: selectors, changed: changed)
            }
            group.addTask {
                // A CRD deleted (or the permission revoked) while watched: the watches fail; ask
                // whether the resource is gone, and if so start over (the probe above says how).
                while await Self.sleep(min(options.trafficSplitRetryInterval, .seconds(5))) {
                    guard splits.health.consecutiveFailures > 0 else { continue }
                    do {
                        _ = try await client.list(TrafficSplit.self, namespace: nil, options: ListOptions(limit: 1))
                    } catch KubeError.notFound {
                        return
                    } catch KubeError.unauthorized {
                        return
                    } catch {}
                }
            }
            await group.next()
            selectorSignal.finish()
            group.cancelAll()
        }
    }

    /// Restarts the apex slice watch whenever the set of apex names changes (signalled after
    /// the splits have listed, and after each change of a split's apex).
    private func followSlices(client: KubeClient, options: KubernetesSourceOptions, logger: Logger,
                              signals: AsyncStream<Void>, changed: @escaping @Sendable () -> Void) async {
        var running: Task<Void, Never>?
        var selector: String?
        for await _ in signals {
            let apexes = Set(state.withLockedValue { $0.splits?.objects ?? [] }.compactMap(PolicyTranslator.apexKey))
            let names = Set(apexes.compactMap { $0.split(separator: "/").last.map(String.init) })
            let next = names.isEmpty ? nil : "\(KubeEndpointSlice.serviceNameLabel) in (\(names.sorted().joined(separator: ",")))"
            if next == selector {
                let stale = state.withLockedValue { state -> Bool in
                    defer { state.apexes = apexes; state.slicesCover = apexes }
                    return state.apexes != apexes
                }
                if stale { changed() }
                continue
            }
            selector = next
            running?.cancel()
            var sliceOptions = options.informer
            sliceOptions.namespace = nil
            sliceOptions.labelSelector = next
            let informer = next.map { _ in Informer<KubeEndpointSlice>(client: client, options: sliceOptions, logger: logger) }
            state.withLockedValue { state in
                // Keep the previous watch's slices until this one has listed.
                if let previous = state.slices, previous.health.hasSynced {
                    state.carriedSlices = previous.objects
                    state.carriedCover = state.slicesCover
                }
                state.slices = informer
                state.slicesCover = informer == nil ? [] : apexes
                state.apexes = apexes
                if informer == nil {
                    state.carriedSlices = []
                    state.carriedCover = []
                }
            }
            if let informer {
                running = Task { await informer.run { _ in changed() } }
            } else {
                running = nil
            }
            changed()
        }
        running?.cancel()
        await running?.value
    }

    private static func sleep(_ duration: Duration) async -> Bool {
        do {
            try await Task.sleep(for: duration)
            return true
        } catch {
            return false
        }
    }
}
