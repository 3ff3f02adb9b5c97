import ArgumentParser
import NFTables

/// The `run` flags that control nftables programming.
struct RulesOptions: ParsableArguments {
    @Flag(help: "Do not program nftables (DNS only; no root needed).")
    var noNftables = false

    @Flag(help: "Program nftables once from the state and exit: status 0 only when the kernel then holds exactly the desired rules.")
    var once = false

    @Flag(help: "Print the desired nftables ruleset in `nft -f` syntax and exit without touching the kernel.")
    var printRuleset = false

    @Flag(help: "Remove the agent's nftables tables (ip and ip6 mirror-agent) and exit; --feed is not needed.")
    var cleanup = false

    @Option(name: .customLong("dns-address"),
            help: ArgumentHelp("The DNS listener address whose port 53 traffic (UDP and TCP, both directions) bypasses conntrack (NOTRACK). Repeat for IPv4 and IPv6.", valueName: "ip"))
    var dnsAddresses: [String] = []

    func validate() throws {
        for text in dnsAddresses where IPAddress(text) == nil {
            throw ValidationError("--dns-address \(text): not an IPv4 or IPv6 address")
        }
        if noNftables && (once || cleanup) {
            throw ValidationError("--no-nftables cannot be combined with --once or --cleanup")
        }
    }

    /// The parsed --dns-address values.
    var notrackAddresses: [IPAddress] { dnsAddresses.compactMap(IPAddress.init) }

    /// True when the command does one nftables job and exits instead of running the agent.
    var isOneShot: Bool { once || printRuleset || cleanup }
}
