import NIOConcurrencyHelpers

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

    /// The Prometheus text exposition (version 0.0.4).
    public func render() -> String {
        let v = values.withLockedValue { $0 }
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples { out += "\(name)\(labels) \(value)\n" }
        }
        metric("mirror_feed_watchers", "gauge", "Open watch streams.", [("", "\(v.watchers)")])
        metric("mirror_feed_revision", "gauge", "Revision of the state the feed serves.", [("", "\(v.revision)")])
        metric("mirror_feed_history_deltas", "gauge", "Deltas held for resuming clients.", [("", "\(v.historySize)")])
        metric("mirror_feed_deltas_published_total", "counter", "Deltas published (each sent to every watcher).", [("", "\(v.deltasPublished)")])
        metric("mirror_feed_snapshots_published_total", "counter", "Changes published as a whole snapshot (not expressible as deltas).", [("", "\(v.snapshotsPublished)")])
        let kinds = ["snapshot", "resume", "upsertCluster", "deleteCluster", "upsertService", "deleteService", "bookmark"]
        metric("mirror_feed_events_sent_total", "counter", "Events written to watchers, by type.",
               kinds.map { ("{type=\"\($0)\"}", "\(v.eventsSent[$0] ?? 0)") })
        metric("mirror_feed_bytes_sent_total", "counter", "Event bytes written to watchers, with their HTTP chunk framing (without TLS).", [("", "\(v.bytesSent)")])
        metric("mirror_feed_watchers_cut_total", "counter", "Watchers closed because they fell too far behind; they resume on reconnect.", [("", "\(v.watchersCut)")])
        metric("mirror_feed_snapshot_bytes_in_flight", "gauge", "Snapshot bytes admitted and not yet written out (bounded; new snapshots get 503 past the bound).",
               [("", "\(v.snapshotBytesInFlight)")])
        metric("mirror_feed_watches_started_total", "counter", "Watch streams started, by how they began.",
               ["snapshot", "resume"].map { ("{start=\"\($0)\"}", "\(v.watchesStarted[$0] ?? 0)") })
        return out
    }
}
