import AsyncHTTPClient
import Foundation
import Logging
import MirrorModel
import NIOConcurrencyHelpers

/// What `dump --feed` shows of one Link's gateway probes.
public struct GatewayProbeStatus: Sendable, Codable, Equatable {
    public struct Address: Sendable, Codable, Equatable {
        public var address: String
        public var alive: Bool
        public var consecutiveFailures: Int
        public var lastLatencyMilliseconds: Double?
        public var lastProbe: Date?
        public var lastError: String?
    }

    /// The cluster's gateway as published: alive while any address answers.
    public var alive: Bool
    /// `http://<address>:<port><path>`, with `<address>` a placeholder.
    public var target: String
    public var addresses: [Address]
    /// A `gatewayAddress` name that cannot be resolved (the last resolved addresses stay).
    public var resolveError: String?
}

/// Probes a Link's gateway: every address (names resolved again every `resolveInterval`),
/// `GET http://address:port/path` every `period` (jittered), dead after `failureThreshold`
/// consecutive failures, alive again after one success.
///
/// Every address starts from its last known state: dead if the Link's status says so, else
/// alive — so a feed restart publishes no dead window (Linkerd's probe starts dead and fails
/// traffic after every restart). A Link without `probeSpec` is not probed.
final class GatewayProber: Sendable {
    struct Settings: Hashable, Sendable {
        var entries: [String]
        var port: Int
        var path: String
        var period: Duration
        var timeout: Duration
        var failureThreshold: Int

        /// nil when the Link has no `probeSpec`; unusable fields fall back to Linkerd's defaults
        /// (`/ready`, 4191, 3 s, failure threshold 3).
        init?(link: LinkerdLink) {
            guard let spec = link.spec.probeSpec else { return nil }
            let resolved = spec.resolved
            entries = link.spec.gatewayAddresses
            port = resolved.port
            path = resolved.path
            period = resolved.period
            timeout = resolved.timeout
            failureThreshold = resolved.failureThreshold
        }
    }

    private struct AddressState {
        var alive = true
        var failures = 0
        var latency: Duration?
        var lastProbe: Date?
        var lastError: String?
    }

    private struct State {
        /// Resolved addresses, in entry order.
        var addresses: [String] = []
        var resolved = false
        var probes: [String: AddressState] = [:]
        var resolveError: String?
    }

    let settings: Settings
    private let state: NIOLockedValueBox<State>

    /// - Parameter dead: addresses last known dead (from the Link's status): they start dead
    ///   and need one successful probe, so a restarted feed does not publish them alive.
    init(settings: Settings, dead: Set<String> = []) {
        self.settings = settings
        var state = State()
        for address in dead {
            state.probes[address] = AddressState(alive: false, failures: settings.failureThreshold)
        }
        self.state = NIOLockedValueBox(state)
    }

    /// The addresses to publish and whether the gateway is alive: the live addresses, or
    /// every address and dead when none answers. nil until the entries are resolved.
    var verdict: (addresses: [String], alive: Bool)? {
        state.withLockedValue { state in
            guard state.resolved, !state.addresses.isEmpty else { return nil }
            let live = state.addresses.filter { state.probes[$0]?.alive ?? true }
            return live.isEmpty ? (state.addresses, false) : (live, true)
        }
    }

    var status: GatewayProbeStatus {
        state.withLockedValue { state in
            let addresses = state.addresses.map { address in
                let probe = state.probes[address] ?? AddressState()
                return GatewayProbeStatus.Address(
                    address: address, alive: probe.alive, consecutiveFailures: probe.failures,
                    lastLatencyMilliseconds: probe.latency.map { $0.seconds * 1000 }, lastProbe: probe.lastProbe,
                    lastError: probe.lastError)
            }
            return GatewayProbeStatus(alive: addresses.isEmpty || addresses.contains(where: \.alive),
                                      target: "http://<address>:\(settings.port)\(settings.path)",
                                      addresses: addresses, resolveError: state.resolveError)
        }
    }

    /// Resolves and probes until cancelled; `changed` is called when the verdict changes.
    func run(http: HTTPClient, resolver: any GatewayResolver, resolveInterval: Duration, logger: Logger,
             changed: @escaping @Sendable () -> Void) async {
        var nextResolve = ContinuousClock.now
        while !Task.isCancelled {
            if ContinuousClock.now >= nextResolve {
                if await resolve(resolver, logger: logger) { changed() }
                nextResolve = .now + resolveInterval
            }
            let addresses = state.withLockedValue { $0.addresses }
            let before = verdict
            await withTaskGroup(of: Void.self) { group in
                for address in addresses {
                    group.addTask { await self.probe(address, http: http, logger: logger) }
                }
            }
            if verdict.map({ "\($0.addresses)\($0.alive)" }) != before.map({ "\($0.addresses)\($0.alive)" }) { changed() }
            // ±10%, so probes of many Links do not go out in lockstep.
            let wait = settings.period.seconds * Double.random(in: 0.9...1.1)
            guard (try? await Task.sleep(for: .seconds(wait))) != nil else { return }
        }
    }

    /// Resolves the entries; true when the address list changed. A failed lookup keeps the
    /// addresses it gave last time.
    private func resolve(_ resolver: any GatewayResolver, logger: Logger) async -> Bool {
        let previous = state.withLockedValue { $0.addresses }
        var addresses: [String] = []
        var failure: String?
        for entry in settings.entries {
            if let canonical = IPAddressText.canonical(entry)?.text {
                if !addresses.contains(canonical) { addresses.append(canonical) }
                continue
            }
            do {
                for address in try await resolver.addresses(of: entry) where !addresses.contains(address) {
                    addresses.append(address)
                }
            } catch {
                failure = "\(error)"
                // Keep what this name gave before rather than losing the gateway.
                addresses += previous.filter { !addresses.contains($0) && !settings.entries.contains($0) }
            }
        }
        return state.withLockedValue { state in
            state.resolveError = failure
            state.resolved = true
            guard addresses != state.addresses else { return false }
            if state.resolved, !state.addresses.isEmpty {
                logger.info("gateway addresses changed", metadata: ["from": "\(state.addresses)", "to": "\(addresses)"])
            }
            state.addresses = addresses
            state.probes = state.probes.filter { addresses.contains($0.key) }
            return true
        }
    }

    private func probe(_ address: String, http: HTTPClient, logger: Logger) async {
        let host = address.contains(":") ? "[\(address)]" : address
        let started = ContinuousClock.now
        var failure: String?
        do {
            var request = HTTPClientRequest(url: "http://\(host):\(settings.port)\(settings.path)")
            // A fresh connection each time: a reused one can outlive the gateway's listener.
            request.headers.add(name: "connection", value: "close")
            let response = try await http.execute(request, timeout: .nanoseconds(settings.timeout.nanoseconds))
            _ = try? await response.body.collect(upTo: 64 << 10)
            if !(200..<300).contains(response.status.code) { failure = "HTTP \(response.status.code)" }
        } catch {
            guard !Task.isCancelled else { return }
            failure = "\(error)"
        }
        let latency = ContinuousClock.now - started
        state.withLockedValue { state in
            var probe = state.probes[address] ?? AddressState()
            probe.lastProbe = Date()
            probe.latency = latency
            probe.lastError = failure
            if failure == nil {
                if !probe.alive { logger.notice("gateway \(address) answers its probe again: alive") }
                probe.failures = 0
                probe.alive = true
            } else {
                probe.failures += 1
                if probe.alive, probe.failures >= settings.failureThreshold {
                    probe.alive = false
                    logger.warning("gateway \(address) failed \(probe.failures) probes in a row: dead", metadata: ["error": "\(failure ?? "")"])
                }
            }
            state.probes[address] = probe
        }
    }
}
