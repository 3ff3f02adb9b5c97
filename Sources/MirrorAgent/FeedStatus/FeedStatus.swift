import Foundation
import MirrorKubernetes

/// What `mirror-agent dump --feed` reads from the feed's admin socket.
struct FeedStatus: Codable, Sendable {
    var role = "feed"
    var pid: Int32
    var source: String
    /// This instance's epoch and revision (a revision means something only with its epoch).
    var epoch: String
    var revision: UInt64
    var watchers: Int
    var exportsRevision: UInt64?
    var kubernetes: KubernetesSourceStatus?
    /// `--exports kubernetes`: this cluster's exported Services and their gateway ports.
    var exports: Exports?

    struct Exports: Codable, Sendable {
        var published: Bool
        var exportedServices: Int
        var exportedPorts: Int
        var gatewayPortsInUse: Int
        var allocated: Int
        var freed: Int
        var conflicts: Int
        var lastError: String?
        var problems: [String]

        init(_ status: KubernetesExportsStatus) {
            published = status.published
            exportedServices = status.exportedServices
            exportedPorts = status.exportedPorts
            gatewayPortsInUse = status.allocator.portsInUse
            allocated = status.allocator.allocated
            freed = status.allocator.freed
            conflicts = status.allocator.conflicts
            lastError = status.allocator.lastError
            problems = status.problems.map(\.description)
        }
    }
}

/// Renders a ``FeedStatus`` for people.
struct FeedStatusReport {
    let status: FeedStatus

    init(_ status: FeedStatus) {
        self.status = status
    }

    var text: String {
        var out = "FEED    pid \(status.pid)  source \(status.source)\n"
        out += "STATE   epoch \(status.epoch)  revision \(status.revision)  watchers \(status.watchers)"
        if let exports = status.exportsRevision { out += "  exports revision \(exports)" }
        out += "\n"
        if let exports = status.exports {
            out += "EXPORTS \(exports.published ? "\(exports.exportedServices) services, \(exports.exportedPorts) ports" : "NOT PUBLISHED YET")"
            out += "  gateway ports in use \(exports.gatewayPortsInUse)  allocated \(exports.allocated)  freed \(exports.freed)  conflicts \(exports.conflicts)\n"
            if let error = exports.lastError { out += "        last allocation error: \(error)\n" }
            for problem in exports.problems.prefix(50) { out += "        \(problem)\n" }
        }
        guard let kube = status.kubernetes else { return out }
        let leader = kube.leader
        out += "LEASE   \(leader.isLeader ? "LEADER (this replica writes mirror Services)" : "follower, leader \(leader.holder ?? "none")")"
        out += "  identity \(leader.identity)  transitions \(leader.transitions)\n"
        if let error = leader.lastError { out += "        last lease error: \(error)\n" }
        out += "PUBLISH \(kube.published ? "\(kube.servicesPublished) services, last \(kube.lastPublished.map(StatusReport.age) ?? "never")" : "NOT YET (waiting for Links and remote clusters)")"
        out += "  mirror Services wanted \(kube.mirrorServicesDesired)  created \(kube.created)  updated \(kube.updated)  deleted \(kube.deleted)\n"
        if !kube.linksListed { out += "        Links not listed yet (check RBAC on links.multicluster.linkerd.io)\n" }
        out += "POLICIES \(kube.policies) traffic policies published  (TrafficSplits: \(kube.trafficSplits))\n"
        out += "\n" + StatusReport.table(header: ["LINK", "CLUSTER", "STATE", "SERVICES", "LAST EVENT", "LAST ERROR"], rows: kube.links.map { link in
            let state = !link.synced ? "NOT SYNCED" : link.stale ? "STALE (keeping last state)" : link.connected ? "connected" : "syncing"
            return [link.link, link.cluster ?? "-", state, "\(link.servicesMirrored)", link.lastEvent.map(StatusReport.age) ?? "-",
                    link.lastError ?? ""]
        })
        let probed = kube.links.filter { $0.gateway != nil }
        if !probed.isEmpty {
            out += "\n" + StatusReport.table(header: ["LINK", "GATEWAY", "PROBE", "LATENCY", "FAILURES", "LAST PROBE", "LAST ERROR"], rows: probed.flatMap { link -> [[String]] in
                guard let gateway = link.gateway else { return [] }
                var rows = gateway.addresses.map { address in
                    [link.link, address.address, address.alive ? "alive" : "DEAD",
                     address.lastLatencyMilliseconds.map { String(format: "%.1f ms", $0) } ?? "-", "\(address.consecutiveFailures)",
                     address.lastProbe.map(StatusReport.age) ?? "not yet", address.lastError ?? ""]
                }
                if rows.isEmpty { rows = [[link.link, "-", "no address", "-", "-", "-", gateway.resolveError ?? ""]] }
                else if let error = gateway.resolveError { rows.append([link.link, "", "", "", "", "", error]) }
                return rows
            })
            out += "        (gateways probed at \(probed.compactMap { $0.gateway?.target }.first ?? "-"); a cluster is dead when every address is)\n"
        }
        if !kube.writeProblems.isEmpty {
            out += "\nNOT WRITTEN\n"
            for (key, problem) in kube.writeProblems.sorted(by: { $0.key < $1.key }) { out += "  \(key): \(problem)\n" }
        }
        if kube.skippedCount > 0 {
            out += "\nNOT MIRRORED (\(kube.skippedCount))\n"
            for skip in kube.skipped { out += "  \(skip)\n" }
            if kube.skippedCount > kube.skipped.count { out += "  … \(kube.skippedCount - kube.skipped.count) more\n" }
        }
        return out
    }
}
