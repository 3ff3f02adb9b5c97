import Foundation

extension StatusBoard {
    /// The agent's metrics in the Prometheus text exposition format.
    func prometheusText() async -> String {
        var lines: [String] = []
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, String)]) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            for (labels, value) in samples { lines.append("\(name)\(labels) \(value)") }
        }
        metric("mirror_agent_ready", "gauge", "1 once a mirror state has been applied.", [("", ready ? "1" : "0")])
        metric("mirror_agent_revision", "gauge", "Revision of the last applied mirror state.", [("", "\(store.revision)")])
        metric("mirror_agent_services", "gauge", "Mirrored services held.", [("", "\(store.services.count)")])
        metric("mirror_agent_clusters", "gauge", "Remote clusters held.", [("", "\(store.clusters.count)")])
        metric("mirror_agent_clusters_dead", "gauge", "Remote clusters whose gateway is marked dead.",
               [("", "\(store.clusters.values.filter { $0.gateway?.alive == false }.count)")])
        let names = parts.keys.sorted()
        metric("mirror_agent_syncs_total", "counter", "Mirror updates applied, per part.",
               names.map { ("{part=\"\($0)\"}", "\(parts[$0]?.syncs ?? 0)") })
        metric("mirror_agent_sync_failures_total", "counter", "Mirror updates a part failed to apply (its previous state stayed).",
               names.map { ("{part=\"\($0)\"}", "\(parts[$0]?.failures ?? 0)") })
        metric("mirror_agent_sync_duration_seconds", "gauge", "Duration of the last sync, per part.",
               names.map { ("{part=\"\($0)\"}", String(format: "%.6f", (parts[$0]?.lastDuration?.milliseconds ?? 0) / 1000)) })
        if let dns = await currentDNSStatistics() {
            var samples = dns.answeredByCode.sorted { $0.key < $1.key }.map { ("{outcome=\"\($0.key)\"}", "\($0.value)") }
            samples.append(("{outcome=\"forwarded\"}", "\(dns.forwarded)"))
            samples.append(("{outcome=\"dropped\"}", "\(dns.dropped)"))
            metric("mirror_agent_dns_queries_total", "counter",
                   "DNS queries by outcome: answered at once (by rcode, table or cache), forwarded upstream, or dropped.", samples)
            metric("mirror_agent_dns_cache_hits_total", "counter", "Forwarded names answered from the cache.", [("", "\(dns.cacheHits)")])
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
