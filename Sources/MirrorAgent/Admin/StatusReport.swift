import Foundation

/// Renders an ``AgentStatus`` as the tables `mirror-agent dump` prints.
struct StatusReport {
    let status: AgentStatus

    init(_ status: AgentStatus) {
        self.status = status
    }

    var text: String {
        var out = ""
        let feed = status.feed
        out += "AGENT   pid \(status.agent.pid), version \(status.agent.version), up \(Self.age(status.agent.startedAt))\n"
        out += "FEED    \(feed.source)  \(feed.ready ? "ready" : "NOT READY (no state applied yet)")  revision \(feed.revision)"
        out += "  last change \(feed.lastChange.map(Self.age) ?? "never")  updates \(feed.updates)"
        if let connected = feed.connected {
            out += connected ? "  connected" : "  DISCONNECTED (serving the last state)"
            if let since = feed.since { out += " since \(Self.age(since))" }
            out += "  reconnects \(feed.reconnects ?? 0)"
        }
        out += "\n"
        if let error = feed.lastError { out += "        last error: \(error)\n" }
        for file in feed.tls ?? [] { out += "TLS     \(file.summary)\n" }
        out += "\n" + Self.table(header: ["CLUSTER", "GATEWAY", "ALIVE", "MASQUERADE", "SERVICES"], rows: status.clusters.map { cluster in
            let gateway = cluster.gatewayAddresses.isEmpty ? "-" : cluster.gatewayAddresses.joined(separator: ",") + ":\(cluster.gatewayPort ?? 0)"
            return [cluster.name, gateway, cluster.alive ? "yes" : "NO", cluster.masquerade ? "yes" : "no", "\(cluster.services)"]
        })
        out += "\n" + Self.table(header: ["SERVICE", "MODE", "CLUSTERIP:PORT", "TARGETS", "PACKETS", "BYTES"], rows: status.services.flatMap { service in
            service.routes.enumerated().map { index, route in
                [index == 0 ? service.dnsName : "", index == 0 ? service.mode : "",
                 route.frontend + (route.notInDNS.map { " (\($0): not in DNS)" } ?? ""),
                 route.targets.isEmpty ? "REJECT (no live target)" : route.targets.joined(separator: ","),
                 index == 0 ? service.packets.map(String.init) ?? "-" : "", index == 0 ? service.bytes.map(String.init) ?? "-" : ""]
            }
        })
        if let policies = status.policies, !policies.isEmpty {
            out += "\n" + Self.table(header: ["POLICY", "PORT", "BACKEND", "SHARE", "PACKETS"], rows: policies.enumerated().map { index, row in
                let first = index == 0 || policies[index - 1].policy != row.policy
                let sameSlot = !first && policies[index - 1].port == row.port
                return [first ? row.policy : "", sameSlot ? "" : row.port, row.backend,
                        String(format: "%.1f%%", row.share * 100) + (row.note.map { " (\($0))" } ?? ""), row.packets.map(String.init) ?? "-"]
            })
        }
        out += "\n" + Self.table(header: ["PART", "ENABLED", "LAST SYNC", "DURATION", "FAILURES", "DETAIL"], rows: [("nftables", status.nftables), ("dns", status.dns)].map { name, part in
            var detail = part.detail.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            if let error = part.lastError { detail.insert("lastError=\(error)", at: 0) }
            return [name, part.enabled ? "yes" : "no", part.lastSync.map(Self.age) ?? "-",
                    part.lastDurationMilliseconds.map { String(format: "%.2f ms", $0) } ?? "-", "\(part.failures)", detail.joined(separator: " ")]
        })
        if let upstreams = status.upstreams, !upstreams.isEmpty {
            out += "\n" + Self.table(header: ["UPSTREAM", "HEALTHY", "SENT", "ANSWERS", "TIMEOUTS", "ERRORS", "TC->TCP", "LATENCY"], rows: upstreams.map { upstream in
                [upstream.upstream, upstream.healthy ? "yes" : "NO (\(upstream.consecutiveFailures) failures in a row)",
                 "\(upstream.queriesSent)", "\(upstream.answers)", "\(upstream.timeouts)", "\(upstream.errors)",
                 "\(upstream.truncatedRetries)", String(format: "%.2f ms", upstream.latencyMilliseconds)]
            })
        }
        return out
    }

    static func age(_ date: Date) -> String {
        let seconds = max(0, Int(Date().timeIntervalSince(date)))
        if seconds < 120 { return "\(seconds)s ago" }
        if seconds < 7200 { return "\(seconds / 60)m ago" }
        return "\(seconds / 3600)h ago"
    }

    /// Left-aligned columns, two spaces apart. A row's trailing blanks are dropped, its
    /// leading ones kept (a service's second and later ClusterIP:port rows start blank).
    static func table(header: [String], rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            var line = row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
            while line.last?.isWhitespace == true { line.removeLast() }
            return line
        }.joined(separator: "\n") + "\n"
    }
}
