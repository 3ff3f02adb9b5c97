import DNSResponder
import Foundation
import NFTables
import MirrorModel
import MirrorFeed

/// The agent's live bookkeeping for `dump`, `/readyz` and `/metrics`: the last applied store
/// and what each part did with it. Written by the update loop, read by the admin socket.
actor StatusBoard {
    /// Outcome counters and the last result of one part (DNS or nftables).
    struct PartRecord: Sendable {
        var enabled: Bool
        var lastSync: Date?
        var lastDuration: Duration?
        var syncs = 0
        var failures = 0
        var lastError: String?
        var detail: [String: String] = [:]
    }

    private var source: String
    private let startedAt = Date()
    private(set) var store = MirrorStore()
    private(set) var ready = false
    private var lastChange: Date?
    private var updates = 0
    private(set) var parts: [String: PartRecord]
    /// Reads the DNS responder's query counters, once it runs.
    private var dnsStatistics: (@Sendable () async -> DNSStatistics?)?

    func setDNSStatisticsSource(_ source: @escaping @Sendable () async -> DNSStatistics?) {
        dnsStatistics = source
    }

    /// Reads the conntrack cleanup totals (nftables on, ctnetlink reachable or not).
    private var flowStatistics: (@Sendable () async -> FlowCleaner.Statistics?)?

    func setFlowStatisticsSource(_ source: @escaping @Sendable () async -> FlowCleaner.Statistics?) {
        flowStatistics = source
    }

    /// The DNS query counters now (nil when DNS is off or not started).
    func currentDNSStatistics() async -> DNSStatistics? {
        await dnsStatistics?()
    }

    /// Prometheus counters; events are recorded as they come, the rest is copied in per scrape.
    nonisolated let metrics: AgentMetrics
    /// The feed connection's state, when the source is a network feed.
    private var feedLink: FeedLinkRecorder?

    func setFeedLink(_ recorder: FeedLinkRecorder) {
        feedLink = recorder
    }

    /// The feed client's TLS material, whose expiry `dump` and `/metrics` show.
    private var tlsMaterial: TLSReloader?

    func setTLSMaterial(_ material: TLSReloader) {
        tlsMaterial = material
    }

    init(source: String, parts: [String: Bool], metrics: AgentMetrics = AgentMetrics()) {
        self.source = source
        self.parts = parts.mapValues { PartRecord(enabled: $0) }
        self.metrics = metrics
    }

    /// Names the source and which parts run, once they are known.
    func configure(source: String, parts enabled: [String: Bool]) {
        self.source = source
        for (name, on) in enabled { parts[name, default: PartRecord(enabled: on)].enabled = on }
    }

    /// `merged`: how many source updates were coalesced into this one.
    func recordUpdate(_ store: MirrorStore, merged: Int = 1) {
        self.store = store
        ready = true
        lastChange = Date()
        updates += merged
        metrics.recordUpdate(merged: merged)
    }

    func recordSync(part: String, duration: Duration, error: (any Error)?) {
        var record = parts[part] ?? PartRecord(enabled: true)
        record.lastSync = Date()
        record.lastDuration = duration
        record.syncs += 1
        if let error {
            record.failures += 1
            record.lastError = "\(error)"
        } else {
            record.lastError = nil
        }
        parts[part] = record
        metrics.recordSync(part: part, duration: duration, failed: error != nil)
    }

    func recordDetail(part: String, _ key: String, _ value: String) {
        parts[part, default: PartRecord(enabled: true)].detail[key] = value
    }

    /// Whether the agent programs nftables (and so has kernel counters to show).
    var programsNFTables: Bool { parts["nftables"]?.enabled == true }

    /// The whole status. `counters` (per service, read from the kernel by the caller, outside
    /// this actor so a slow read never holds up updates) fill the service rows.
    func snapshot(counters: [String: Counter]) async -> AgentStatus {
        let (clusters, services) = AgentStatus.inventory(store, counters: counters)
        var parts = self.parts
        let statistics = await currentDNSStatistics()
        if let statistics {
            let codes = statistics.answeredByCode.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            parts["dns", default: PartRecord(enabled: true)].detail["queries"] =
                (codes + ["cache hits \(statistics.cacheHits)", "forwarded \(statistics.forwarded)", "dropped \(statistics.dropped)"]).joined(separator: ", ")
            if statistics.listeners.count > 1 || statistics.listeners.contains(where: \.intercepted) {
                parts["dns", default: PartRecord(enabled: true)].detail["queries-by-address"] = statistics.listeners.map {
                    "\($0.address)\($0.intercepted ? " (transparent)" : "") \($0.queries)"
                }.joined(separator: ", ")
            }
        }
        if let flows = await flowStatistics?() {
            parts["nftables", default: PartRecord(enabled: true)].detail["conntrack"] = flows.available
                ? "stale UDP/SCTP entries deleted \(flows.deleted), failures \(flows.failures)"
                : "unavailable (nf_conntrack_netlink?): stale flows are not moved"
        }
        func part(_ name: String) -> AgentStatus.Part {
            let record = parts[name] ?? PartRecord(enabled: false)
            return AgentStatus.Part(enabled: record.enabled, lastSync: record.lastSync,
                                    lastDurationMilliseconds: record.lastDuration?.milliseconds, failures: record.failures,
                                    lastError: record.lastError, detail: record.detail)
        }
        return AgentStatus(
            agent: .init(pid: ProcessInfo.processInfo.processIdentifier, version: MirrorAgentCommand.configuration.version, startedAt: startedAt),
            feed: feedStatus(),
            clusters: clusters, services: services, dns: part("dns"), nftables: part("nftables"),
            upstreams: (statistics?.upstreams ?? []).map { health in
                AgentStatus.Upstream(upstream: health.upstream, healthy: health.healthy, queriesSent: health.queriesSent,
                                     answers: health.answers, timeouts: health.timeouts, errors: health.errors,
                                     truncatedRetries: health.truncatedRetries,
                                     latencyMilliseconds: Double(health.latencyMicroseconds) / 1000,
                                     consecutiveFailures: health.consecutiveFailures)
            }, policies: AgentStatus.policies(store, counters: counters))
    }
}

extension StatusBoard {
    private func feedStatus() -> AgentStatus.Feed {
        var feed = AgentStatus.Feed(source: source, ready: ready, revision: store.revision, lastChange: lastChange,
                                    updates: updates, lastError: nil)
        if let link = feedLink?.link {
            feed.connected = link.connected
            feed.since = link.since
            feed.reconnects = link.reconnects
            feed.lastError = link.lastError
        }
        if let tlsMaterial { feed.tls = tlsMaterial.expiries.map(AgentStatus.TLSFile.init) }
        return feed
    }

    /// Whether a scrape should read the kernel's per-service counters: only when the agent
    /// programs nftables and the services fit under the per-service series limit.
    var wantsServiceSeries: Bool { programsNFTables && metrics.serviceSeriesLimit > 0 && store.services.count <= metrics.serviceSeriesLimit }

    /// The Prometheus exposition. `counters` are read from the kernel by the caller, outside
    /// this actor, as for `snapshot`.
    func prometheusText(counters: [String: Counter]) async -> String {
        let statistics = await currentDNSStatistics()
        return metrics.scrape(store: store, ready: ready, dns: statistics, feed: feedLink?.link, flows: await flowStatistics?(),
                              tls: tlsMaterial?.expiries ?? [],
                              counters: counters.mapValues { (packets: $0.packets, bytes: $0.bytes) })
    }
}
