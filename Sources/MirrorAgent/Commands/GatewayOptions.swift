import ArgumentParser
import Foundation
import NFTables
import NIOCore
import MirrorModel
import MirrorFeed

/// `gateway`'s own flags: who may reach the gateway ports, which ports exports may use, and
/// where the probe, metrics and admin socket listen.
struct GatewayOptions: ParsableArguments {
    @Option(name: .customLong("allow-source"), help: ArgumentHelp("Source range (CIDR) allowed to reach the gateway ports, e.g. the importing clusters' node and pod ranges. Repeatable; required. Packets from anywhere else are dropped (and counted) before conntrack sees them; give 0.0.0.0/0 and ::/0 explicitly to allow everyone.", valueName: "cidr"))
    var allowSource: [String] = []

    @Option(help: ArgumentHelp("Gateway ports exports may use. The default stays below Kubernetes' NodePort range (30000-32767) and Linux's ephemeral ports (32768-60999), which the node's own connections and masquerading use.", valueName: "from-to"))
    var gatewayPortRange = "\(GatewayPortRange.default)"

    @Option(help: ArgumentHelp("Where the importing clusters probe this gateway: GET /ready answers 200 while the tables are programmed and the exports fresh, 503 otherwise (Linkerd's Link probe uses port 4191, path /ready).", valueName: "addr:port"))
    var probeListen = "0.0.0.0:4191"

    @Option(help: ArgumentHelp("Address for /healthz, /readyz and /metrics (Prometheus). Off when not given. Keep it off the probe address: metrics name every exported service.", valueName: "addr:port"))
    var httpListen: String?

    @Option(help: ArgumentHelp("Seconds the gateway stays ready after losing its feed; past them /ready answers 503, so importing clusters stop sending traffic that may go to endpoints which no longer exist.", valueName: "seconds"))
    var staleAfter: Int = 120

    @Option(help: ArgumentHelp("Unix socket `mirror-agent dump --gateway` reads the gateway's state from (mode 0600).", valueName: "path"))
    var adminSocket = AdminSocket.gatewayPath

    @Option(help: ArgumentHelp("Seconds between checks that the kernel still holds the gateway's rules (the backstop: edits by others are seen through nf_tables notifications and repaired within a second). 0 turns off both.", valueName: "seconds"))
    var driftCheckInterval: Int = 30

    @Flag(help: "On SIGTERM/SIGINT remove the ip/ip6 mirror-gateway tables. By default they stay, so established connections keep flowing across an upgrade.")
    var cleanupOnExit = false

    /// The parsed --allow-source ranges.
    func allowedSources() throws -> [IPPrefix] {
        guard !allowSource.isEmpty else {
            throw ValidationError("--allow-source is required: the CIDR ranges of the importing clusters' nodes and pods (0.0.0.0/0 and ::/0 to allow everyone)")
        }
        return try allowSource.map { text in
            guard let prefix = IPPrefix(text) else {
                throw ValidationError("--allow-source \(text): not a CIDR range (expected e.g. 10.0.0.0/8 or fd00::/64)")
            }
            return prefix
        }
    }

    func portRange() throws -> GatewayPortRange {
        guard let range = GatewayPortRange(parsing: gatewayPortRange) else {
            throw ValidationError("--gateway-port-range \(gatewayPortRange): expected FROM-TO with 1 <= FROM <= TO <= 65535, e.g. 20000-29999")
        }
        return range
    }

    func validate() throws {
        _ = try allowedSources()
        _ = try portRange()
        _ = try listenAddress(probeListen, flag: "--probe-listen")
        if let httpListen { _ = try listenAddress(httpListen, flag: "--http-listen") }
        guard staleAfter > 0 else { throw ValidationError("--stale-after must be at least 1 second") }
        guard driftCheckInterval >= 0 else { throw ValidationError("--drift-check-interval must be 0 (off) or a number of seconds") }
    }

    /// The address of a listen flag (`--probe-listen`, `--http-listen`).
    func listenAddress(_ text: String, flag: String) throws -> SocketAddress {
        try MirrorAgent.listenAddress(text, flag: flag, example: "0.0.0.0:4191")
    }
}
