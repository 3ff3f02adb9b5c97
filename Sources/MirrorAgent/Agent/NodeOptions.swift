import ArgumentParser
import Foundation
import NIOCore

/// `run`'s flags for the node itself: the DNS listener interface, the admin socket, exit
/// behaviour and drift repair.
struct NodeOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Dummy interface that carries the --dns-address addresses; created if absent.", valueName: "name"))
    var dnsInterface = "mirror0"

    @Option(help: ArgumentHelp("Unix socket `mirror-agent dump` reads the agent's state from (mode 0600).", valueName: "path"))
    var adminSocket = AdminSocket.defaultPath

    @Flag(help: "On SIGTERM/SIGINT remove the agent's nftables tables, the DNS addresses and the dummy interface. By default they stay, so traffic keeps flowing across an upgrade.")
    var cleanupOnExit = false

    @Option(help: ArgumentHelp("Address for /healthz, /readyz (ready once the first state is applied) and /metrics (Prometheus). Off when not given.", valueName: "addr:port"))
    var httpListen: String?

    @Option(help: ArgumentHelp("Per-service packet/byte series in /metrics (mirror_agent_service_packets_total) only while the agent holds at most this many services; above it they are left out so a scrape stays small. 0 turns them off.", valueName: "count"))
    var metricsServiceLimit: Int = 10_000

    @Option(help: ArgumentHelp("Seconds between checks that the kernel still holds the agent's rules (the backstop: edits by others, such as `nft flush ruleset`, are seen through nf_tables notifications and repaired within a second). Drift is repaired and logged. 0 turns off both.", valueName: "seconds"))
    var driftCheckInterval: Int = 30

    func validate() throws {
        guard !dnsInterface.isEmpty, dnsInterface.utf8.count < 16, !dnsInterface.contains("/"), !dnsInterface.contains(" ") else {
            throw ValidationError("--dns-interface \(dnsInterface): not a valid interface name (1–15 characters, no '/' or spaces)")
        }
        if let httpListen { _ = try httpAddress(httpListen) }
        guard metricsServiceLimit >= 0 else { throw ValidationError("--metrics-service-limit must be 0 (off) or a number of services") }
        guard driftCheckInterval >= 0 else { throw ValidationError("--drift-check-interval must be 0 (off) or a number of seconds") }
    }
}

extension NodeOptions {
    func httpAddress(_ text: String) throws -> SocketAddress {
        try listenAddress(text, flag: "--http-listen", example: "127.0.0.1:9153")
    }
}

/// Parses a listen flag's `addr:port` / `[v6]:port`, naming the flag and an example when it
/// is not one.
func listenAddress(_ text: String, flag: String, example: String) throws -> SocketAddress {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
        throw ValidationError("\(flag) \(text): expected ADDRESS:PORT, e.g. \(example)")
    }
    let host = text[..<colon].trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
    do {
        return try SocketAddress(ipAddress: host, port: port)
    } catch {
        throw ValidationError("\(flag) \(text): \(host) is not an IP address")
    }
}
