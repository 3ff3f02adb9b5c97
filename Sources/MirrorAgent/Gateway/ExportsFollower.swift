import CHeapArenas
import Foundation
import Logging
import ServiceLifecycle
import MirrorModel
import MirrorFeed

/// Follows the exports source and programs every valid document it delivers; repairs drift
/// as soon as another process touches the gateway's tables, and on a timer as a backstop.
/// Documents are whole, so when several arrive while one is being applied only the newest is
/// applied next.
struct ExportsFollower: Service {
    let source: any ExportsSource
    let rules: GatewayRules
    let board: GatewayBoard
    /// The periodic drift check; nil turns drift repair off (the timer and the monitor).
    let driftCheckInterval: Duration?
    let logger: Logger
    /// Opens the nf_tables change monitor in the network namespace of the rules (the calling
    /// thread's, for the gateway; tests open it inside their namespace).
    var openMonitor: DriftWatch.OpenMonitor = DriftWatch.openInCurrentNamespace

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    let (documents, post) = AsyncStream.makeStream(of: ExportsDocument.self, bufferingPolicy: .bufferingNewest(1))
                    group.addTask {
                        defer { post.finish() }
                        try await source.run { post.yield($0) }
                    }
                    group.addTask {
                        for await document in documents { await apply(document) }
                    }
                    if let driftCheckInterval {
                        group.addTask { try await repairDrift(every: driftCheckInterval) }
                        let rules = rules
                        if let watch = DriftWatch(tables: rules.role.tableIDs, owner: "gateway", ownPort: rules.commitPort, checkInterval: driftCheckInterval,
                                                  open: openMonitor, logger: logger) {
                            // The watch logs each repair; the gateway's board keeps no drift record.
                            group.addTask { try await watch.run(repair: { try await rules.repairDrift() }) { _, _, _ in } }
                        }
                    }
                    try await group.next()
                    group.cancelAll()
                }
            }
        } catch is CancellationError {
            // Shutdown: the rules stay in the kernel.
        }
    }

    private func apply(_ document: ExportsDocument) async {
        do {
            let report = try await rules.apply(document)
            await board.recordApplied(document, report: report)
            logger.info("gateway tables in sync", metadata: [
                "cluster": "\(document.cluster)", "exports": "\(document.exports.count)", "ports": "\(report.ports)",
                "mode": "\(report.full ? "full" : "incremental")", "batch": "\(report.transaction.summary)",
                "duration_ms": "\(String(format: "%.3f", report.duration.milliseconds))",
            ])
        } catch {
            await board.recordFailure(error)
            logger.error("could not program the exports; the previous rules stay in force", metadata: ["error": "\(error)"])
        }
        // Every document is decoded whole (a file re-read, a feed snapshot): hand the freed
        // heap back, or RSS stays at its peak (measured: 256 MiB instead of ~50 after edits
        // of a 10k-port document).
        mirror_agent_trim_heap()
    }

    private func repairDrift(every interval: Duration) async throws {
        while true {
            try await Task.sleep(for: interval)
            do {
                if let sent = try await rules.repairDrift(), !sent.isEmpty {
                    logger.warning("nftables drift repaired: the gateway's tables had been changed behind its back", metadata: ["batch": "\(sent.summary)"])
                }
            } catch {
                logger.error("nftables drift check failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
