import Foundation
import MirrorKubernetes
import Prometheus

/// The Kubernetes source's part of the feed's `/metrics`, from its status at scrape time.
enum LinkMetrics {
    static func record(_ status: KubernetesSourceStatus, into registry: PrometheusCollectorRegistry) {
        func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "mirror_feed", metricName: metric, unitName: unit, helpText: help)
        }
        let connected = name("link_connected", "", "1 while every watch of the Link's remote cluster is healthy.")
        let stale = name("link_stale", "", "1 while the remote cluster fails after having been listed: its mirrors keep the last state.")
        let synced = name("link_synced", "", "1 once the remote cluster has been listed.")
        let services = name("link_services_mirrored", "", "Services of the Link's cluster in the published state.")
        let lastEvent = name("link_last_event", "timestamp_seconds", "When the remote cluster was last heard from (Unix time).")
        for link in status.links {
            let labels = [("link", link.link), ("cluster", link.cluster ?? "")]
            registry.makeGauge(descriptor: connected, labels: labels).set(to: link.connected ? 1 : 0)
            registry.makeGauge(descriptor: stale, labels: labels).set(to: link.stale ? 1 : 0)
            registry.makeGauge(descriptor: synced, labels: labels).set(to: link.synced ? 1 : 0)
            registry.makeGauge(descriptor: services, labels: labels).set(to: Double(link.servicesMirrored))
            registry.makeGauge(descriptor: lastEvent, labels: labels).set(to: link.lastEvent?.timeIntervalSince1970 ?? 0)
        }
        let gatewayAlive = name("link_gateway_alive", "", "1 while the Link's gateway answers its probe on some address (Links with a probeSpec).")
        let probeLatency = name("link_gateway_probe_latency", "seconds", "Duration of the last probe of each gateway address.")
        let probeFailures = name("link_gateway_probe_failures", "", "Consecutive failed probes of each gateway address.")
        for link in status.links {
            guard let gateway = link.gateway else { continue }
            let labels = [("link", link.link), ("cluster", link.cluster ?? "")]
            registry.makeGauge(descriptor: gatewayAlive, labels: labels).set(to: gateway.alive ? 1 : 0)
            for address in gateway.addresses {
                let addressLabels = labels + [("address", address.address)]
                registry.makeGauge(descriptor: probeLatency, labels: addressLabels).set(to: (address.lastLatencyMilliseconds ?? 0) / 1000)
                registry.makeGauge(descriptor: probeFailures, labels: addressLabels).set(to: Double(address.consecutiveFailures))
            }
        }
        registry.makeGauge(descriptor: name("leader", "", "1 on the replica that writes mirror Services (holds the Lease)."))
            .set(to: status.leader.isLeader ? 1 : 0)
        let writes = name("mirror_service_writes", "total", "Mirror Services written to the local cluster, by operation.")
        registry.makeCounter(descriptor: writes, labels: [("op", "create")]).set(total: UInt64(status.created))
        registry.makeCounter(descriptor: writes, labels: [("op", "update")]).set(total: UInt64(status.updated))
        registry.makeCounter(descriptor: writes, labels: [("op", "delete")]).set(total: UInt64(status.deleted))
        registry.makeGauge(descriptor: name("mirror_service_problems", "", "Mirror Services that cannot be written (name clash, missing namespace)."))
            .set(to: Double(status.writeProblems.count))
        registry.makeGauge(descriptor: name("policies", "", "Traffic policies (from SMI TrafficSplits) in the published state."))
            .set(to: Double(status.policies))
        registry.makeGauge(descriptor: name("translation_skipped", "", "Remote objects left out of the mirror, each reported in dump --feed."))
            .set(to: Double(status.skippedCount))
    }

    /// `--exports kubernetes`: the exports document and the gateway-port record.
    static func record(exports status: KubernetesExportsStatus, into registry: PrometheusCollectorRegistry) {
        func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "mirror_feed", metricName: metric, unitName: unit, helpText: help)
        }
        registry.makeGauge(descriptor: name("exports_services", "", "Exported Services in the published exports document.")).set(to: Double(status.exportedServices))
        registry.makeGauge(descriptor: name("exports_ports", "", "Exported ports (each with its gateway port) in the published exports document.")).set(to: Double(status.exportedPorts))
        registry.makeGauge(descriptor: name("gateway_ports_in_use", "", "Gateway ports held in the allocation record.")).set(to: Double(status.allocator.portsInUse))
        registry.makeCounter(descriptor: name("gateway_port_conflicts", "total", "Allocation record writes refused because another allocator wrote first (retried).")).set(total: UInt64(status.allocator.conflicts))
        registry.makeGauge(descriptor: name("export_problems", "", "Exported Services or ports left out, each named in dump --feed.")).set(to: Double(status.problems.count))
    }
}
