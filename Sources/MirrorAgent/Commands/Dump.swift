import ArgumentParser
import Foundation
import NFTables

/// `mirror-agent dump`: show what a running agent holds and has programmed.
struct Dump: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a running agent's feed, services, DNS and nftables state.",
        discussion: """
            Asks the agent on this node (through its admin socket) and prints, at a glance: the \
            feed (source, revision, last change, errors), the clusters (gateway addresses, \
            alive), every mirrored service (DNS name, ClusterIP:port -> targets, packets and \
            bytes from the kernel counters), and the health of its DNS and nftables parts. \
            The counters sit on the lookup maps, which the nat chains consult once per \
            connection: they count each connection's first packet, i.e. new connections.

            --nft reads the agent's own nftables tables (ip and ip6 mirror-agent) straight from \
            the kernel — not from the agent's memory — and prints, per service, every mirrored \
            ClusterIP proto/port, where it is rewritten to (gateway or pod addresses, or reject \
            when no target is alive) and its packet and byte counters. It works even when no \
            agent runs. Both need root on the node.

            Examples:
              mirror-agent dump
              mirror-agent dump -o json | jq '.services[] | select(.packets > 0)'
              mirror-agent dump --nft
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table, json
    }

    @Option(name: .shortAndLong, help: "Output format: table (for people) or json (for scripts).")
    var output: Format = .table

    @Flag(help: "Read the agent's nftables tables from the kernel and print them per service with packet/byte counters.")
    var nft = false

    @Flag(help: "Ask the gateway (`mirror-agent gateway`) on this node instead of the node agent: exported ports, gateway ports, endpoints, counters. With --nft, read the ip/ip6 mirror-gateway tables.")
    var gateway = false

    @Flag(help: "Ask the feed (`mirror-agent feed`) instead of the node agent: its epoch and revision, and with the Kubernetes source each Link (connected, stale, services mirrored, last error), the Lease and the mirror Services it could not write.")
    var feed = false

    @Option(help: ArgumentHelp("The admin socket to ask (default: /run/mirror-agent/admin.sock, or gateway.sock with --gateway, feed.sock with --feed).", valueName: "path"))
    var adminSocket: String?

    func run() async throws {
        if nft { return try dumpKernel() }
        let path = adminSocket ?? (gateway ? AdminSocket.gatewayPath : feed ? AdminSocket.feedPath : AdminSocket.defaultPath)
        do {
            let raw = try await AdminClient.request(path: path)
            if output == .json {
                print(String(decoding: raw, as: UTF8.self), terminator: raw.last == UInt8(ascii: "\n") ? "" : "\n")
            } else if let status = try? AdminSocket.decoder().decode(FeedStatus.self, from: raw), status.role == "feed" {
                print(FeedStatusReport(status).text, terminator: "")
            } else if let status = try? AdminSocket.decoder().decode(GatewayStatus.self, from: raw), status.role == "gateway" {
                print(GatewayReport(status).text, terminator: "")
            } else {
                print(StatusReport(try AdminClient.decodeStatus(raw)).text, terminator: "")
            }
        } catch let error as AdminClientError {
            printError("mirror-agent dump: \(error)")
            throw ExitCode(1)
        }
    }

    private func dumpKernel() throws {
        do {
            let backend = try KernelRulesetBackend()
            defer { backend.close() }
            let role: MirrorTables.Role = gateway ? .gateway(allowedSources: []) : .node
            let snapshot = try backend.read(role.tableIDs)
            if snapshot.ruleset.tables.isEmpty {
                print("no \(role.tableName) tables in this network namespace (nothing has programmed it, or it ran --cleanup-on-exit)")
                return
            }
            print(RulesetReport(snapshot).text, terminator: "")
        } catch let error as NFTablesError {
            printError("mirror-agent dump --nft: \(error)")
            throw ExitCode(1)
        }
    }
}
