import NIOConcurrencyHelpers
import Prometheus
import MirrorModel

/// The feed server's counters, rendered in the Prometheus text exposition format at
/// `/metrics`. Updated from every event loop, so behind one lock; writers batch per broadcast.
public final class FeedMetrics: Sendable {
    struct Values {
        var watchers = 0
        var revision: UInt64 = 0
        var historySize = 0
        var deltasPublished: UInt64 = 0
        var snapshotsPublished: UInt64 = 0
        var eventsSent: [String: UInt64] = [:]
        var bytesSent: UInt64 = 0
        var watchersCut: UInt64 = 0
        var watchesStarted: [String: UInt64] = [:]
        var snapshotBytesInFlight = 0
    }

    private let values = NIOLockedValueBox(Values())
    /// Scrapes copy totals in (reset, then add): one at a time.
    private let exposition = NIOLockedValueBox(PrometheusCollectorRegistry())

    public init() {}

    func update(_ body: (inout Values) -> Void) {
        values.withLockedValue(body)
    }

    /// The current number of open watch streams.
    public var watchers: Int { values.withLockedValue { $0.watchers } }
    /// Payload bytes sent to watchers so far (event lines, without HTTP framing).
    public var bytesSent: UInt64 { values.withLockedValue { $0.bytesSent } }
    /// Watchers closed because they fell too far behind.
    public var watchersCut: UInt64 { values.withLockedValue { $0.watchersCut } }
    /// How many watch streams started with a snapshot (`snapshot`) or resumed (`resume`).
    public func watchesStarted(_ kind: String) -> UInt64 { values.withLockedValue { $0.watchesStarted[kind] ?? 0 } }

    /// The server's TLS material, whose expiry each scrape shows.
    private let tls = NIOLockedValueBox<TLSReloader?>(nil)

    /// Shows the expiry of `material`'s files in `/metrics` (role `feed`).
    public func follow(_ material: TLSReloader) {
        tls.withLockedValue { $0 = material }
    }

    /// Metrics of the state's source (per Link for the Kubernetes source), added at each scrape.
    private let sourceCollector = NIOLockedValueBox<(@Sendable (PrometheusCollectorRegistry) -> Void)?>(nil)

    /// Adds `collect`'s metrics to every scrape.
    public func collectSource(_ collect: @escaping @Sendable (PrometheusCollectorRegistry) -> Void) {
        sourceCollector.withLockedValue { $0 = collect }
    }

    /// The Prometheus text exposition (version 0.0.4), through a swift-prometheus registry.
    /// The hot paths only bump ``Values`` under the lock; a scrape copies them in.
    public func render() -> String {
        let v = values.withLockedValue { $0 }
        return exposition.withLockedValue { registry in
            func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
                MetricNameDescriptor(namespace: "mirror_feed", metricName: metric, unitName: unit, helpText: help)
            }
            func gauge(_ descriptor: MetricNameDescriptor, _ value: Int) {
                registry.makeGauge(descriptor: descriptor).set(to: Double(value))
            }
            func counter(_ descriptor: MetricNameDescriptor, _ total: UInt64, _ labels: [(String, String)] = []) {
                registry.makeCounter(descriptor: descriptor, labels: labels).set(total: total)
            }
            gauge(name("watchers", "", "Open watch streams."), v.watchers)
            gauge(name("revision", "", "Revision of the state the feed serves."), Int(clamping: v.revision))
            gauge(name("history_deltas", "", "Deltas held for resuming clients."), v.historySize)
            counter(name("deltas_published", "total", "Deltas published (each sent to every watcher)."), v.deltasPublished)
            counter(name("snapshots_published", "total", "Changes published as a whole snapshot (not expressible as deltas)."), v.snapshotsPublished)
            let events = name("events_sent", "total", "Events written to watchers, by type.")
            for kind in ["snapshot", "resume", "upsertCluster", "deleteCluster", "upsertService", "deleteService", "upsertPolicy", "deletePolicy", "bookmark"] {
                counter(events, v.eventsSent[kind] ?? 0, [("type", kind)])
            }
            counter(name("bytes_sent", "total", "Event bytes written to watchers, with their HTTP chunk framing (without TLS)."), v.bytesSent)
            counter(name("watchers_cut", "total", "Watchers closed because they fell too far behind; they resume on reconnect."), v.watchersCut)
            gauge(name("snapshot_bytes_in_flight", "", "Snapshot bytes admitted and not yet written out (bounded; new snapshots get 503 past the bound)."),
                  v.snapshotBytesInFlight)
            let starts = name("watches_started", "total", "Watch streams started, by how they began.")
            for start in ["snapshot", "resume"] { counter(starts, v.watchesStarted[start] ?? 0, [("start", start)]) }
            if let material = tls.withLockedValue({ $0 }) { TLSReloader.Expiry.record(material.expiries, role: "feed", into: registry) }
            sourceCollector.withLockedValue { $0 }?(registry)
            return registry.emitToString()
        }
    }
}
