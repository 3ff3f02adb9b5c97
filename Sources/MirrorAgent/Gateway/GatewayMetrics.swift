import NIOConcurrencyHelpers
import MirrorModel
import MirrorFeed
import Prometheus

/// The gateway's Prometheus metrics (`mirror_gateway_*`). Events are counted as they happen;
/// readiness and the kernel's per-port counters are copied in just before a scrape.
final class GatewayMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    /// The per-port label sets of the last scrape, so ports that went away lose their series.
    private let portSeries = NIOLockedValueBox<Set<[String]>>([])
    private let scrapeLock = NIOLock()

    private static func name(_ metric: String, _ unit: String = "", _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "mirror_gateway", metricName: metric, unitName: unit, helpText: help)
    }

    static var syncs: MetricNameDescriptor { name("syncs", "total", "Exports documents applied to the kernel (including failed attempts).") }
    static var syncFailures: MetricNameDescriptor { name("sync_failures", "total", "Exports documents the kernel refused (the previous rules stayed in force).") }
    static var syncDuration: MetricNameDescriptor { name("sync_duration", "seconds", "Time to apply one exports document.") }
    static var rejected: MetricNameDescriptor { name("rejected_documents", "total", "Exports documents refused as invalid (the previous one stayed in force).") }
    static var ready: MetricNameDescriptor { name("ready", "", "1 while /ready answers 200: tables programmed and exports fresh.") }
    static var ports: MetricNameDescriptor { name("exported_ports", "", "Exported service ports programmed.") }
    static var rejectingPorts: MetricNameDescriptor { name("ports_without_endpoints", "", "Exported ports with no ready endpoint (connections refused at once).") }
    static var feedConnected: MetricNameDescriptor { name("feed_connected", "", "1 while the watch stream to the feed is up (network feeds only).") }
    static var portPackets: MetricNameDescriptor { name("port_packets", "total", "First packets of connections steered through a gateway port (kernel counter).") }
    static var portBytes: MetricNameDescriptor { name("port_bytes", "total", "Bytes of those packets (kernel counter).") }
    static var conntrackDeleted: MetricNameDescriptor { name("conntrack_deleted", "total", "Conntrack entries of UDP/SCTP flows deleted because their endpoint went away.") }
    static var conntrackFailures: MetricNameDescriptor { name("conntrack_failures", "total", "Conntrack cleanups that failed (those flows stay pinned until idle).") }
    static var refused: MetricNameDescriptor { name("refused_packets", "total", "Packets to gateway ports dropped because their source is not in --allow-source.") }

    func recordSync(duration: Duration, failed: Bool) {
        registry.makeCounter(descriptor: Self.syncs, labels: []).increment()
        let failures = registry.makeCounter(descriptor: Self.syncFailures, labels: [])
        if failed { failures.increment() }
        if !failed {
            registry.makeDurationHistogram(descriptor: Self.syncDuration, labels: [], buckets: AgentMetrics.syncBuckets).record(duration)
        }
    }

    func recordRejectedDocument() {
        registry.makeCounter(descriptor: Self.rejected, labels: []).increment()
    }

    func scrape(ready: Bool, ports: [GatewayStatus.Port], refused: UInt64, feed: FeedLinkRecorder.Link?, flows: FlowCleaner.Statistics?,
                tls: [TLSReloader.Expiry]) -> String {
        scrapeLock.withLock {
            TLSReloader.Expiry.record(tls, role: "gateway", into: registry)
            if let flows, flows.available {
                registry.makeCounter(descriptor: Self.conntrackDeleted, labels: []).set(total: UInt64(flows.deleted))
                registry.makeCounter(descriptor: Self.conntrackFailures, labels: []).set(total: UInt64(flows.failures))
            }
            registry.makeGauge(descriptor: Self.ready, labels: []).set(to: ready ? 1 : 0)
            registry.makeGauge(descriptor: Self.ports, labels: []).set(to: Double(ports.count))
            registry.makeGauge(descriptor: Self.rejectingPorts, labels: []).set(to: Double(ports.filter(\.targets.isEmpty).count))
            _ = registry.makeCounter(descriptor: Self.rejected, labels: [])  // at zero before the first rejection
            registry.makeCounter(descriptor: Self.refused, labels: []).set(total: refused)
            if let feed { registry.makeGauge(descriptor: Self.feedConnected, labels: []).set(to: feed.connected ? 1 : 0) }
            let labelled = ports.map { port in ([port.service, "\(port.protocol.lowercased())/\(port.gatewayPort)"], port) }
            let now = Set(labelled.map(\.0))
            let gone = portSeries.withLockedValue { previous -> Set<[String]> in
                defer { previous = now }
                return previous.subtracting(now)
            }
            for values in gone {
                let labels = [("service", values[0]), ("gateway_port", values[1])]
                registry.unregisterCounter(registry.makeCounter(descriptor: Self.portPackets, labels: labels))
                registry.unregisterCounter(registry.makeCounter(descriptor: Self.portBytes, labels: labels))
            }
            for (values, port) in labelled {
                let labels = [("service", values[0]), ("gateway_port", values[1])]
                registry.makeCounter(descriptor: Self.portPackets, labels: labels).set(total: port.packets ?? 0)
                registry.makeCounter(descriptor: Self.portBytes, labels: labels).set(total: port.bytes ?? 0)
            }
            return registry.emitToString()
        }
    }
}
