import ArgumentParser
import NFTables

/// `mirror-agent dump`: show what a running agent holds and has programmed.
struct Dump: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a running agent's feed, services, DNS and nftables state.",
        discussion: """
            --nft reads the agent's own nftables tables (ip and ip6 mirror-agent) straight from \
            the kernel — not from the agent's memory — and prints, per service, every mirrored \
            ClusterIP proto/port, where it is rewritten to (gateway or pod addresses, or reject \
            when no target is alive) and its packet and byte counters. Needs root (CAP_NET_ADMIN) \
            in the node's network namespace.

            Example:
              mirror-agent dump --nft
            """
    )

    @Flag(help: "Read the agent's nftables tables from the kernel and print them per service with packet/byte counters.")
    var nft = false

    func run() async throws {
        guard nft else {
            printError("mirror-agent dump: only --nft is available so far (the admin socket is not built yet)")
            throw ExitCode(2)
        }
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
