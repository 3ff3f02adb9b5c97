import ArgumentParser
import Sync

/// `mirror-agent check`: validate a mirror state file (and, later, preflight a node).
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a mirror state file and summarise it.",
        discussion: """
            Reads FILE (YAML or JSON), checks every rule the agent enforces (DNS labels, known \
            clusters, unique ClusterIP/port/protocol, port ranges, …) and prints a summary. \
            On any problem, every problem is listed on stderr, each naming the object and the \
            field, and the exit status is 1. A state rejected here is also rejected by `run` \
            and `feed`, which keep serving their last good state.

            Example:
              mirror-agent check --state examples/two-clusters.yaml
            """
    )

    @Option(name: .long, help: ArgumentHelp("The state file to validate (YAML or JSON).", valueName: "file"))
    var state: String?

    func run() throws {
        guard let path = state else {
            throw ValidationError("node preflight checks are not built yet; pass --state FILE to validate a state file")
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
