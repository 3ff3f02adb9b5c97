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

    @Option(help: ArgumentHelp("The agent's admin socket.", valueName: "path"))
    var adminSocket = AdminSocket.defaultPath

    func run() async throws {
        if nft { return try dumpKernel() }
        do {
            let (status, raw) = try await AdminClient.status(path: adminSocket)
            if output == .json {
                print(String(decoding: raw, as: UTF8.self), terminator: raw.last == UInt8(ascii: "\n") ? "" : "\n")
            } else {
                print(StatusReport(status).text, terminator: "")
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
            let snapshot = try backend.read(MirrorTables.tableIDs)
            if snapshot.ruleset.tables.isEmpty {
                print("no mirror-agent tables in this network namespace (the agent has not programmed it, or ran --cleanup)")
                return
            }
            print(RulesetReport(snapshot).text, terminator: "")
        } catch let error as NFTablesError {
            printError("mirror-agent dump --nft: \(error)")
            throw ExitCode(1)
        }
    }
}
