import DNSResponder
import Testing
@testable import MirrorAgent
import MirrorModel
import MirrorFeed

/// The exposition `/metrics` serves: events counted as they happen, other parts' totals
/// copied in per scrape, per-service series that follow the services and stop at the limit.
@Suite("AgentMetrics")
struct AgentMetricsTests {
    private static func store(revision: UInt64) throws -> MirrorStore {
        var store = MirrorStore()
        let state = MirrorState(clusters: [Cluster(name: "paris", gateway: Gateway(addresses: ["10.99.1.2"], alive: false))])
        _ = try store.applySnapshot(state, revision: revision)
        return store
    }

    @Test("syncs, failures, durations, coalesced updates, store gauges and DNS outcomes")
    func eventsAndTotals() throws {
        let metrics = AgentMetrics()
        metrics.recordSync(part: "nftables", duration: .milliseconds(2), failed: false)
        metrics.recordSync(part: "nftables", duration: .milliseconds(3), failed: true)
        metrics.recordUpdate(merged: 3)
        var dns = DNSStatistics()
        dns.answeredByCode = ["NOERROR": 7, "NXDOMAIN": 2]
        dns.forwarded = 5
        dns.cacheHits = 4
        let text = metrics.scrape(store: try Self.store(revision: 9), ready: true, dns: dns, counters: [:])

        #expect(text.contains(#"mirror_agent_syncs_total{part="nftables"} 2"#))
        #expect(text.contains(#"mirror_agent_sync_failures_total{part="nftables"} 1"#))
        #expect(text.contains(#"mirror_agent_sync_duration_seconds_count{part="nftables"} 2"#))
        #expect(text.contains("mirror_agent_updates_total 3"))
        #expect(text.contains("mirror_agent_updates_coalesced_total 2"))
        #expect(text.contains("mirror_agent_revision 9"))
        #expect(text.contains("mirror_agent_clusters_dead 1"))
        #expect(text.contains("mirror_agent_ready 1"))
        #expect(text.contains(#"mirror_agent_dns_queries_total{outcome="NXDOMAIN"} 2"#))
        #expect(text.contains(#"mirror_agent_dns_queries_total{outcome="forwarded"} 5"#))
        #expect(text.contains("mirror_agent_dns_cache_hits_total 4"))
        #expect(text.contains("# HELP mirror_agent_syncs_total "))
        #expect(text.contains("# TYPE mirror_agent_sync_duration_seconds histogram"))

        // Totals owned elsewhere are copied, not added: a second scrape shows the same figure.
        dns.forwarded = 6
        let again = metrics.scrape(store: try Self.store(revision: 9), ready: true, dns: dns, counters: [:])
        #expect(again.contains(#"mirror_agent_dns_queries_total{outcome="forwarded"} 6"#))
    }

    @Test("per-service series follow the kernel counters, vanish with the service, and stop at the limit")
    func perServiceSeries() throws {
        let metrics = AgentMetrics(serviceSeriesLimit: 2)
        let store = try Self.store(revision: 1)
        let first = metrics.scrape(store: store, ready: true, dns: nil, counters: [
            "default/bar-paris:80/TCP": (packets: 3, bytes: 180),
            "default/baz-paris:80/TCP": (packets: 1, bytes: 60),
        ])
        #expect(first.contains(#"mirror_agent_service_packets_total{service="default/bar-paris:80/TCP"} 3"#))
        #expect(first.contains(#"mirror_agent_service_bytes_total{service="default/baz-paris:80/TCP"} 60"#))

        let second = metrics.scrape(store: store, ready: true, dns: nil, counters: ["default/bar-paris:80/TCP": (packets: 4, bytes: 240)])
        #expect(second.contains(#"mirror_agent_service_packets_total{service="default/bar-paris:80/TCP"} 4"#))
        #expect(!second.contains("baz-paris"))

        let over = metrics.scrape(store: store, ready: true, dns: nil, counters: [
            "a": (packets: 1, bytes: 1), "b": (packets: 1, bytes: 1), "c": (packets: 1, bytes: 1),
        ])
        #expect(!over.contains("mirror_agent_service_packets_total{"))
    }
}
