import ArgumentParser
import MirrorModel
import MirrorFeed

/// `mirror-agent check`: validate a mirror state file (and, later, preflight a node).
struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a node before (or while) running the agent, or validate a mirror state file.",
        discussion: """
            Without --state: node preflight, one pass/fail line each — capabilities \
            (CAP_NET_ADMIN, CAP_NET_BIND_SERVICE), nf_tables answering, each --dns-listen \
            address free for UDP and TCP, each --upstream answering DNS, --feed reachable, each \
            --certificate's expiry (! within 7 days, × expired). \
            Exit status 1 when any check fails.

            With --state FILE: reads FILE (YAML or JSON), checks every rule the agent enforces (DNS labels, known \
            clusters, unique ClusterIP/port/protocol, port ranges, …) and prints a summary. \
            On any problem, every problem is listed on stderr, each naming the object and the \
            field, and the exit status is 1. A state rejected here is also rejected by `run` \
            and `feed`, which keep serving their last good state.

            Examples:
              mirror-agent check --state examples/two-clusters.yaml
              mirror-agent check --dns-listen 169.254.20.11:53 --upstream 10.96.0.10:53 --feed https://mirror-feed:8443
              mirror-agent check --certificate /etc/mirror/tls/tls.crt --certificate /etc/mirror/tls/ca.crt
            """
    )

    @Option(name: .long, help: ArgumentHelp("The state file to validate (YAML or JSON).", valueName: "file"))
    var state: String?

    @Option(name: .customLong("dns-listen"), help: ArgumentHelp("Preflight: a DNS listen address the agent will use (repeatable).", valueName: "addr:port"))
    var dnsListen: [String] = []

    @Option(help: ArgumentHelp("Preflight: an upstream DNS server the agent will forward to (repeatable).", valueName: "addr:port"))
    var upstream: [String] = []

    @Option(help: ArgumentHelp("Preflight: the feed the agent will follow (https://HOST:PORT or file:PATH).", valueName: "source"))
    var feed: String?

    @Option(name: .customLong("certificate"), help: ArgumentHelp("Preflight: a PEM certificate or CA bundle in use (--tls-cert, --ca, --client-ca; repeatable). Warns when one expires within 7 days, fails when one has expired.", valueName: "file"))
    var certificates: [String] = []

    func run() async throws {
        guard let path = state else {
            let results = await Preflight(dnsListen: dnsListen, upstreams: upstream, feed: feed, certificates: certificates).run()
            for result in results {
                let mark = !result.passed ? "×" : result.warning ? "!" : "√"
                // Padded, never cut: a long certificate path must stay whole.
                let name = result.name.count < 28 ? result.name.padding(toLength: 28, withPad: " ", startingAt: 0) : result.name
                print("\(mark) \(name) \(result.detail)")
            }
            let failed = results.filter { !$0.passed }.count
            print(failed == 0 ? "\nall \(results.count) checks passed" : "\n\(failed) of \(results.count) checks failed")
            if failed > 0 { throw ExitCode(1) }
            return
        }
        let parsed: MirrorState
        do {
            parsed = try MirrorState(contentsOf: path)
        } catch {
            printError("\(path): \(error)")
            throw ExitCode(1)
        }
        print(StateSummary(parsed).render(path: path))
    }
}

/// The few numbers an operator wants to see after a state file validates.
struct StateSummary {
    var clusters: Int
    var deadGateways: [String]
    var servicesByMode: [MirrorMode: Int]
    var ports: Int
    var endpoints: Int
    var readyEndpoints: Int

    init(_ state: MirrorState) {
        clusters = state.clusters.count
        deadGateways = state.clusters.filter { $0.gateway?.alive == false }.map(\.name).sorted()
        servicesByMode = Dictionary(grouping: state.services, by: \.mode).mapValues(\.count)
        ports = state.services.reduce(0) { $0 + $1.ports.count * $1.ips.count }
        endpoints = state.services.reduce(0) { $0 + $1.endpoints.count }
        readyEndpoints = state.services.reduce(0) { $0 + $1.endpoints.filter(\.ready).count }
    }

    func render(path: String) -> String {
        let services = servicesByMode.values.reduce(0, +)
        let modes = MirrorMode.allCases.map { "\($0.rawValue) \(servicesByMode[$0] ?? 0)" }.joined(separator: ", ")
        var lines = [
            "\(path): valid",
            "  clusters:  \(clusters)" + (deadGateways.isEmpty ? "" : " (gateway down: \(deadGateways.joined(separator: ", ")))"),
            "  services:  \(services) (\(modes))",
            "  ports:     \(ports) ClusterIP:port pairs",
            "  endpoints: \(endpoints) (\(readyEndpoints) ready)",
        ]
        if services == 0 { lines.append("  note: no services; nothing will be mirrored") }
        return lines.joined(separator: "\n")
    }
}
