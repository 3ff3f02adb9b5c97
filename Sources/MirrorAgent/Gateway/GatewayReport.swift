import Foundation

/// Renders a ``GatewayStatus`` as the tables `mirror-agent dump --gateway` prints.
struct GatewayReport {
    let status: GatewayStatus

    init(_ status: GatewayStatus) {
        self.status = status
    }

    var text: String {
        var out = "GATEWAY pid \(status.pid), version \(status.version), cluster \(status.cluster ?? "-")"
        out += "  addresses \(status.gatewayAddresses.isEmpty ? "-" : status.gatewayAddresses.joined(separator: ","))\n"
        out += "PROBE   \(status.ready ? "ready" : "NOT READY: \(status.notReadyReason ?? "?")")\n"
        out += "SOURCE  \(status.source)"
        if let connected = status.feedConnected { out += connected ? "  connected" : "  DISCONNECTED (serving the last exports)" }
        out += "  last change \(status.lastChange.map(StatusReport.age) ?? "never")  syncs \(status.syncs)  failures \(status.failures)"
        if let duration = status.lastDurationMilliseconds { out += String(format: "  last %.2f ms", duration) }
        if let batch = status.lastBatch { out += " (\(batch))" }
        out += "\n"
        if let error = status.lastError { out += "        last error: \(error)\n" }
        if let rejected = status.lastRejected { out += "        last rejected document: \(rejected)\n" }
        for file in status.tls ?? [] { out += "TLS     \(file.summary)\n" }
        out += "ALLOWED \(status.allowedSources.joined(separator: ", "))  refused packets \(status.refusedPackets.map(String.init) ?? "-")"
        out += "  stale UDP/SCTP flows moved \(status.conntrackDeleted.map(String.init) ?? "- (conntrack unreachable)")\n"
        out += "\n" + StatusReport.table(header: ["SERVICE", "PORT", "GATEWAY PORT", "ENDPOINTS", "PACKETS", "BYTES", "REFUSED"], rows: status.ports.map { port in
            let name = port.name.map { "\($0) " } ?? ""
            var endpoints = port.targets.isEmpty ? "REJECT (no ready endpoint)" : port.targets.joined(separator: ",")
            if port.notReady > 0 { endpoints += " (+\(port.notReady) not ready)" }
            return [port.service, "\(name)\(port.protocol.lowercased())/\(port.port)", "\(port.gatewayPort)", endpoints,
                    port.packets.map(String.init) ?? "-", port.bytes.map(String.init) ?? "-", port.refusedPackets.map(String.init) ?? "-"]
        })
        return out
    }
}
