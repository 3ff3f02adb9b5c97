import Foundation
import Logging
import NFTables
import Netlink
import NIOConcurrencyHelpers

/// Connection-tracking entries a rule change leaves behind: NAT rules see only a flow's first
/// packet, so a UDP or SCTP flow keeps going to the target it was first sent to, even after
/// that target is removed — as long as the client keeps sending, forever. TCP flows are left
/// to end on their own (a removed target answers them with a reset or they time out), as
/// kube-proxy does.
enum StaleFlows {
    /// Protocols whose flows are cleared.
    static let protocols: Set<UInt8> = [17, 132]

    /// The selectors of the flows `old` routed that `new` no longer routes the same way: for
    /// every port, flows to a target that is no longer among its targets (or to a ClusterIP the
    /// port lost), and flows that were never NATed (sent while the port had no target) to a
    /// port that now has targets.
    static func selectors(old: [ServicePortRule], new: [ServicePortRule]) -> [ConntrackSelector] {
        func key(_ rule: ServicePortRule) -> Int { Int(rule.proto) << 16 | Int(rule.port) }
        var fresh: [Int: ServicePortRule] = [:]
        for rule in new where protocols.contains(rule.proto) { fresh[key(rule)] = rule }
        var previous: [Int: ServicePortRule] = [:]
        for rule in old where protocols.contains(rule.proto) { previous[key(rule)] = rule }
        var selectors: [ConntrackSelector] = []
        for (slot, rule) in previous {
            let now = fresh[slot]
            let kept = Set((now?.targets ?? []).map { Endpoint(address: $0.address, port: $0.port) })
            let vips = Set(now?.addresses ?? [])
            for vip in rule.addresses {
                for target in rule.targets where target.address.family == vip.family {
                    guard !vips.contains(vip) || !kept.contains(Endpoint(address: target.address, port: target.port)) else { continue }
                    selectors.append(selector(rule, vip: vip, replySource: target.address, replyPort: target.port))
                }
            }
        }
        for (slot, rule) in fresh {
            let before = previous[slot]
            for vip in rule.addresses where rule.targets.contains(where: { $0.address.family == vip.family }) {
                let routedBefore = before.map { $0.addresses.contains(vip) && $0.targets.contains { $0.address.family == vip.family } } ?? false
                if !routedBefore { selectors.append(selector(rule, vip: vip, replySource: vip, replyPort: rule.port)) }
            }
        }
        return selectors
    }

    private struct Endpoint: Hashable {
        var address: IPAddress
        var port: UInt16
    }

    private static func selector(_ rule: ServicePortRule, vip: IPAddress, replySource: IPAddress, replyPort: UInt16) -> ConntrackSelector {
        ConntrackSelector(family: UInt8(vip.family.protocolFamily), proto: rule.proto, destination: vip.bytes, destinationPort: rule.port,
                          replySource: replySource.bytes, replySourcePort: replyPort)
    }
}

/// Deletes stale flows after each applied change, off the change's path: finding them costs a
/// walk of the kernel's whole conntrack table (~45 ms at 100k entries), which must not delay
/// the rules themselves. Cleanups run one at a time, in the order changes were applied, on a
/// queue of their own. Without ctnetlink (`nf_conntrack_netlink` missing) it says so once at
/// start and does nothing.
final class FlowCleaner: @unchecked Sendable {
    // @unchecked: `table` is used only on `queue`; `totals` is locked.

    /// What one change's cleanup did.
    struct Report: Sendable {
        var deleted = 0
        var failed = false
        var duration: Duration = .zero
    }

    /// Totals since start, for `dump` and `/metrics`.
    struct Statistics: Sendable {
        var available: Bool
        var deleted = 0
        var failures = 0
        var lastCleanup: Report?
    }

    private let table: ConntrackTable?
    private let queue = DispatchQueue(label: "mirror-agent.conntrack")
    private let totals: NIOLockedValueBox<Statistics>
    private let logger: Logger

    /// Opens ctnetlink in the current network namespace and checks, on the cleanup queue,
    /// that it answers: the check is a filtered walk of the whole conntrack table (~45 ms at
    /// 100k entries), which must not hold up the agent's start.
    init(logger: Logger) {
        self.logger = logger
        var failure: (any Error)?
        do {
            table = try ConntrackTable()
        } catch {
            table = nil
            failure = error
        }
        totals = NIOLockedValueBox(Statistics(available: table != nil))
        queue.async { [self, failure] in
            do {
                if let failure { throw failure }
                try table?.probe()
            } catch {
                totals.withLockedValue { $0.available = false }
                logger.warning("conntrack is not reachable (is nf_conntrack_netlink loaded?): UDP and SCTP flows pinned to a removed target will not be moved until they go idle",
                               metadata: ["error": "\(error)"])
            }
        }
    }

    var statistics: Statistics { totals.withLockedValue { $0 } }

    /// Queues the deletion of the flows `selectors` match; `done` gets the report.
    func clear(_ selectors: [ConntrackSelector], done: (@Sendable (Report) -> Void)? = nil) {
        guard !selectors.isEmpty else { return }
        queue.async { [self] in
            guard totals.withLockedValue({ $0.available }) else { return }
            let report = run(selectors)
            done?(report)
        }
    }

    /// Waits until every queued cleanup has run (tests, shutdown).
    func drain() {
        queue.sync {}
    }

    private func run(_ selectors: [ConntrackSelector]) -> Report {
        guard let table else { return Report() }
        let start = ContinuousClock.now
        var report = Report()
        do {
            report.deleted = try table.deleteFlows(selectors)
        } catch {
            report.failed = true
            logger.error("could not delete stale conntrack entries", metadata: ["flows": "\(selectors.count)", "error": "\(error)"])
        }
        report.duration = ContinuousClock.now - start
        totals.withLockedValue { totals in
            totals.deleted += report.deleted
            if report.failed { totals.failures += 1 }
            totals.lastCleanup = report
        }
        if report.deleted > 0 || report.failed {
            logger.info("moved stale flows", metadata: [
                "conntrack_deleted": "\(report.deleted)", "failed": "\(report.failed)",
                "duration_ms": "\(String(format: "%.3f", report.duration.milliseconds))",
            ])
        }
        return report
    }
}
