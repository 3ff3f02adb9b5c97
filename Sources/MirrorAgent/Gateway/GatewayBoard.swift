import Foundation
import NFTables
import MirrorModel
import MirrorFeed

/// The gateway's live bookkeeping for `/ready`, `dump` and `/metrics`: the document in force,
/// how applying it went, and whether it is fresh. Written by the update loop, read by the
/// probe, the admin socket and scrapes.
actor GatewayBoard {
    private var source: String
    let allowedSources: [String]
    /// How long the gateway stays ready after losing its feed: past it, the endpoints it
    /// routes to may be gone, so the importing clusters had better mark it dead.
    let maxStaleness: Duration
    nonisolated let metrics: GatewayMetrics
    private let startedAt = Date()
    private var feedLink: FeedLinkRecorder?

    private(set) var document: ExportsDocument?
    private var programmed = false
    private var lastChange: Date?
    private var lastError: String?
    private var lastRejected: String?
    private var syncs = 0
    private var failures = 0
    private var lastReport: GatewayRules.Report?

    init(source: String, allowedSources: [String], maxStaleness: Duration, metrics: GatewayMetrics) {
        self.source = source
        self.allowedSources = allowedSources
        self.maxStaleness = maxStaleness
        self.metrics = metrics
    }

    /// Names the source once it is made (`file:…`, `feed:https://…/v1/exports`).
    func setSource(_ description: String) {
        source = description
    }

    func setFeedLink(_ recorder: FeedLinkRecorder) {
        feedLink = recorder
    }

    /// The feed client's TLS material, whose expiry `dump` and `/metrics` show.
    private var tlsMaterial: TLSReloader?

    func setTLSMaterial(_ material: TLSReloader) {
        tlsMaterial = material
    }

    func recordApplied(_ document: ExportsDocument, report: GatewayRules.Report) {
        self.document = document
        programmed = true
        lastChange = Date()
        lastError = nil
        lastReport = report
        syncs += 1
        metrics.recordSync(duration: report.duration, failed: false)
    }

    /// The kernel refused the document's batch: the previous rules stay in force.
    func recordFailure(_ error: any Error) {
        lastError = "\(error)"
        syncs += 1
        failures += 1
        metrics.recordSync(duration: .zero, failed: true)
    }

    /// The source offered a document that failed validation; the previous one stays.
    func recordRejected(_ reason: String) {
        lastRejected = "\(Date()): \(reason)"
        metrics.recordRejectedDocument()
    }

    /// Whether `/ready` should answer 200: the tables are programmed and the exports fresh.
    /// - Returns: nil when ready, else why not (the probe's 503 body).
    func notReadyReason(now: Date = Date()) -> String? {
        guard programmed else {
            return document == nil ? "no exports document applied yet" : "the exports could not be programmed: \(lastError ?? "unknown error")"
        }
        guard let link = feedLink?.link, !link.connected else { return nil }
        let lostAt = link.since ?? startedAt
        let stale = now.timeIntervalSince(lostAt)
        let limit = Double(maxStaleness.components.seconds)
        guard stale > limit else { return nil }
        return "exports are stale: no feed for \(Int(stale)) s (limit \(Int(limit)) s): \(link.lastError ?? "never connected")"
    }

    func status(counters: GatewayCounters?, flows: FlowCleaner.Statistics?) -> GatewayStatus {
        let reason = notReadyReason()
        return GatewayStatus(
            pid: ProcessInfo.processInfo.processIdentifier, version: MirrorAgentCommand.configuration.version, startedAt: startedAt,
            source: source, ready: reason == nil, notReadyReason: reason, cluster: document?.cluster,
            gatewayAddresses: document?.gatewayAddresses ?? [], allowedSources: allowedSources, lastChange: lastChange,
            lastError: lastError ?? feedLink?.link.lastError, lastRejected: lastRejected, feedConnected: feedLink?.link.connected,
            syncs: syncs, failures: failures, lastDurationMilliseconds: lastReport?.duration.milliseconds,
            lastBatch: lastReport.map { "\($0.transaction.summary)" }, ports: GatewayStatus.Port.rows(document, counters: counters),
            refusedPackets: counters?.refusedTotal, conntrackDeleted: flows.flatMap { $0.available ? $0.deleted : nil },
            tls: tlsMaterial?.expiries.map(AgentStatus.TLSFile.init))
    }

    func prometheusText(counters: GatewayCounters, flows: FlowCleaner.Statistics?) -> String {
        metrics.scrape(ready: notReadyReason() == nil, ports: GatewayStatus.Port.rows(document, counters: counters),
                       refused: counters.refusedTotal, feed: feedLink?.link, flows: flows, tls: tlsMaterial?.expiries ?? [])
    }
}
