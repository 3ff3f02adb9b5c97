import DNSResponder
import NIOConcurrencyHelpers
import Prometheus
import MirrorModel
import MirrorFeed

/// The agent's Prometheus metrics, kept in a swift-prometheus registry.
///
/// Events (syncs, failures, coalesced bursts) are counted where they happen. Figures that other
/// parts own — the store's size, the DNS responder's per-loop counters, the kernel's packet
/// counters — are copied in just before a scrape, so no hot path ever touches the registry.
final class AgentMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    /// Per-service series stop here: beyond it a scrape would grow by megabytes per node.
    let serviceSeriesLimit: Int
    /// The per-service label values of the last scrape, so vanished services lose their series.
    private let serviceSeries = NIOLockedValueBox<Set<String>>([])
    /// The policy/backend label values of the last scrape, likewise.
    private let policySeries = NIOLockedValueBox<Set<AgentStatus.PolicyBackendKey>>([])
    /// Copying totals in is reset-then-add: two scrapes at once must not interleave.
    private let scrapeLock = NIOLock()

    static let syncBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5),
    ]

    init(serviceSeriesLimit: Int = 10_000) {
        self.serviceSeriesLimit = serviceSeriesLimit
    }

    private static func name(_ metric: String, _ unit: String = "", _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "mirror_agent", metricName: metric, unitName: unit, helpText: help)
    }

    private func counter(_ descriptor: MetricNameDescriptor, _ labels: [(String, String)] = []) -> Prometheus.Counter {
        registry.makeCounter(descriptor: descriptor, labels: labels)
    }

    private func gauge(_ descriptor: MetricNameDescriptor, _ labels: [(String, String)] = []) -> Gauge {
        registry.makeGauge(descriptor: descriptor, labels: labels)
    }

    // MARK: Events

    static var syncs: MetricNameDescriptor { name("syncs", "total", "Mirror updates applied, per part.") }
    static var syncFailures: MetricNameDescriptor { name("sync_failures", "total", "Mirror updates a part failed to apply (its previous state stayed in force).") }
    static var syncDuration: MetricNameDescriptor { name("sync_duration", "seconds", "Time a part took to apply one mirror update.") }
    static var updates: MetricNameDescriptor { name("updates", "total", "Mirror updates received from the source (feed or file).") }
    static var coalesced: MetricNameDescriptor { name("updates_coalesced", "total", "Mirror updates merged into a later one because they arrived while the agent was busy.") }

    func recordSync(part: String, duration: Duration, failed: Bool) {
        counter(Self.syncs, [("part", part)]).increment()
        // Created at zero on success too, so a failure-rate query has both series.
        let failures = counter(Self.syncFailures, [("part", part)])
        if failed { failures.increment() }
        registry.makeDurationHistogram(descriptor: Self.syncDuration, labels: [("part", part)], buckets: Self.syncBuckets)
            .record(duration)
    }

    func recordUpdate(merged: Int) {
        counter(Self.updates).increment(by: Int64(merged))
        counter(Self.coalesced).increment(by: Int64(max(0, merged - 1)))
    }

    // MARK: Scrape

    static var ready: MetricNameDescriptor { name("ready", "", "1 once a mirror state has been applied.") }
    static var revision: MetricNameDescriptor { name("revision", "", "Revision of the last applied mirror state.") }
    static var services: MetricNameDescriptor { name("services", "", "Mirrored services held.") }
    static var clusters: MetricNameDescriptor { name("clusters", "", "Remote clusters held.") }
    static var deadClusters: MetricNameDescriptor { name("clusters_dead", "", "Remote clusters whose gateway is marked dead.") }
    static var feedConnected: MetricNameDescriptor { name("feed_connected", "", "1 while the watch stream to the mirror feed is up (network feeds only).") }
    static var feedReconnects: MetricNameDescriptor { name("feed_reconnects", "total", "Times the feed stream was re-established after being lost.") }
    static var dnsListenerQueries: MetricNameDescriptor { name("dns_listener_queries", "total", "DNS queries received per listen address; mode is transparent for an intercepted cluster DNS address, else direct.") }
    static var dnsQueries: MetricNameDescriptor { name("dns_queries", "total", "DNS queries by outcome: answered at once (by rcode, from the table or the cache), forwarded upstream, or dropped.") }
    static var dnsCacheHits: MetricNameDescriptor { name("dns_cache_hits", "total", "Forwarded names answered from the cache.") }
    static var upstreamQueries: MetricNameDescriptor { name("dns_upstream_queries", "total", "Queries sent to each upstream DNS server (a TCP retry after truncation counts again).") }
    static var upstreamAnswers: MetricNameDescriptor { name("dns_upstream_answers", "total", "Usable answers (NOERROR, NXDOMAIN) from each upstream.") }
    static var upstreamTimeouts: MetricNameDescriptor { name("dns_upstream_timeouts", "total", "Queries an upstream did not answer in time.") }
    static var upstreamErrors: MetricNameDescriptor { name("dns_upstream_errors", "total", "Queries an upstream failed otherwise: socket errors, SERVFAIL/REFUSED, malformed answers.") }
    static var upstreamTruncated: MetricNameDescriptor { name("dns_upstream_truncated_retries", "total", "Truncated UDP answers asked again over TCP.") }
    static var upstreamHealthy: MetricNameDescriptor { name("dns_upstream_healthy", "", "1 while the upstream answers; 0 after several failures in a row.") }
    static var upstreamLatency: MetricNameDescriptor { name("dns_upstream_latency", "seconds", "Smoothed time an upstream takes to answer.") }
    static var conntrackDeleted: MetricNameDescriptor { name("conntrack_deleted", "total", "Conntrack entries of UDP/SCTP flows deleted because their target went away (so their next packet picks a live one).") }
    static var conntrackFailures: MetricNameDescriptor { name("conntrack_failures", "total", "Conntrack cleanups that failed (the flows stay pinned until idle).") }
    static var conntrackAvailable: MetricNameDescriptor { name("conntrack_available", "", "1 when ctnetlink answers, so stale flows can be moved.") }
    static var servicePackets: MetricNameDescriptor { name("service_packets", "total", "Connections' first packets steered to a mirrored service (kernel counter of its nat map elements).") }
    static var serviceBytes: MetricNameDescriptor { name("service_bytes", "total", "Bytes of those packets (kernel counter of the service's nat map elements).") }
    static var policyPackets: MetricNameDescriptor { name("policy_packets", "total", "Connections' first packets a traffic policy sent to each backend (local or a mirror), over its ports (kernel counters of its slots).") }

    /// Copies the figures other parts own into the registry and renders the exposition.
    /// `counters` are the kernel's per-service packet and byte counters, keyed by service.
    func scrape(store: MirrorStore, ready: Bool, dns: DNSStatistics?, feed: FeedLinkRecorder.Link? = nil,
                flows: FlowCleaner.Statistics? = nil, tls: [TLSReloader.Expiry] = [],
                counters: [String: (packets: UInt64, bytes: UInt64)]) -> String {
        scrapeLock.withLock {
            TLSReloader.Expiry.record(tls, role: "agent", into: registry)
            return render(store: store, ready: ready, dns: dns, feed: feed, flows: flows, counters: counters)
        }
    }

    private func render(store: MirrorStore, ready: Bool, dns: DNSStatistics?, feed: FeedLinkRecorder.Link?,
                        flows: FlowCleaner.Statistics?, counters: [String: (packets: UInt64, bytes: UInt64)]) -> String {
        if let flows {
            gauge(Self.conntrackAvailable).set(to: flows.available ? 1 : 0)
            counter(Self.conntrackDeleted).set(total: UInt64(flows.deleted))
            counter(Self.conntrackFailures).set(total: UInt64(flows.failures))
        }
        if let feed {
            gauge(Self.feedConnected).set(to: feed.connected ? 1 : 0)
            counter(Self.feedReconnects, []).set(total: UInt64(feed.reconnects))
        }
        gauge(Self.ready).set(to: ready ? 1 : 0)
        gauge(Self.revision).set(to: Double(store.revision))
        gauge(Self.services).set(to: Double(store.services.count))
        gauge(Self.clusters).set(to: Double(store.clusters.count))
        gauge(Self.deadClusters).set(to: Double(store.clusters.values.filter { $0.gateway?.alive == false }.count))
        if let dns {
            for (code, count) in dns.answeredByCode { counter(Self.dnsQueries, [("outcome", code)]).set(total: count) }
            counter(Self.dnsQueries, [("outcome", "forwarded")]).set(total: dns.forwarded)
            counter(Self.dnsQueries, [("outcome", "dropped")]).set(total: dns.dropped)
            counter(Self.dnsCacheHits, []).set(total: dns.cacheHits)
            for listener in dns.listeners {
                counter(Self.dnsListenerQueries, [("address", listener.address), ("mode", listener.intercepted ? "transparent" : "direct")])
                    .set(total: listener.queries)
            }
            for health in dns.upstreams {
                let labels = [("upstream", health.upstream)]
                counter(Self.upstreamQueries, labels).set(total: health.queriesSent)
                counter(Self.upstreamAnswers, labels).set(total: health.answers)
                counter(Self.upstreamTimeouts, labels).set(total: health.timeouts)
                counter(Self.upstreamErrors, labels).set(total: health.errors)
                counter(Self.upstreamTruncated, labels).set(total: health.truncatedRetries)
                gauge(Self.upstreamHealthy, labels).set(to: health.healthy ? 1 : 0)
                gauge(Self.upstreamLatency, labels).set(to: Double(health.latencyMicroseconds) / 1_000_000)
            }
        }
        // Policy counters' comments (`policy …`) are never service names.
        let policies = AgentStatus.policyPackets(counters)
        updateServiceSeries(policies.isEmpty ? counters : counters.filter { !$0.key.hasPrefix("policy ") })
        updatePolicySeries(policies)
        return registry.emitToString()
    }

    private func updatePolicySeries(_ packets: [AgentStatus.PolicyBackendKey: UInt64]) {
        let gone = policySeries.withLockedValue { previous -> Set<AgentStatus.PolicyBackendKey> in
            let now = Set(packets.keys)
            defer { previous = now }
            return previous.subtracting(now)
        }
        for key in gone {
            registry.unregisterCounter(counter(Self.policyPackets, [("policy", key.policy), ("backend", key.backend)]))
        }
        for (key, total) in packets {
            counter(Self.policyPackets, [("policy", key.policy), ("backend", key.backend)]).set(total: total)
        }
    }

    private func updateServiceSeries(_ counters: [String: (packets: UInt64, bytes: UInt64)]) {
        let shown = counters.count <= serviceSeriesLimit ? counters : [:]
        let gone = serviceSeries.withLockedValue { previous -> Set<String> in
            let now = Set(shown.keys)
            defer { previous = now }
            return previous.subtracting(now)
        }
        for service in gone {
            registry.unregisterCounter(counter(Self.servicePackets, [("service", service)]))
            registry.unregisterCounter(counter(Self.serviceBytes, [("service", service)]))
        }
        for (service, figures) in shown {
            counter(Self.servicePackets, [("service", service)]).set(total: figures.packets)
            counter(Self.serviceBytes, [("service", service)]).set(total: figures.bytes)
        }
    }
}
