import ArgumentParser
import MirrorModel
import MirrorFeed
import MirrorKubernetes

/// `mirror-agent check`: validate a mirror state file (and, later, preflight a node).
struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a node before (or while) running the agent, the cluster's Links (--links), or validate a mirror state file.",
        discussion: """
            Without --state: node preflight, one pass/fail line each — capabilities \
            (CAP_NET_ADMIN, CAP_NET_BIND_SERVICE), nf_tables answering, each --dns-listen \
            address free for UDP and TCP, each --upstream answering DNS, --feed reachable, each \
            --certificate's expiry (! within 7 days, × expired). \
            Exit status 1 when any check fails.

            With --links: each Link of the local cluster (the feed's namespace, --link-namespace), \
            one line per check — its credentials Secret present and the kubeconfig in it valid; \
            the remote API server reachable (a list of one Service, with its latency) and \
            granting list on Services and EndpointSlices; each gateway address answering \
            GET http://ADDRESS:<probeSpec.port><probeSpec.path> within probeSpec.timeout. Every \
            check is bounded in time and the Links are checked at once. The cluster is \
            --kubeconfig/--context, else $KUBECONFIG or ~/.kube/config, else (in a pod) the \
            pod's service account. Probes and API requests go out from where this runs: run it \
            in the feed's pod for the feed's view. Exit status 1 when any check fails.

            With --state FILE: reads FILE (YAML or JSON), checks every rule the agent enforces (DNS labels, known \
            clusters, unique ClusterIP/port/protocol, port ranges, …) and prints a summary. \
            On any problem, every problem is listed on stderr, each naming the object and the \
            field, and the exit status is 1. A state rejected here is also rejected by `run` \
            and `feed`, which keep serving their last good state.

            Examples:
              mirror-agent check --state examples/two-clusters.yaml
              mirror-agent check --dns-listen 169.254.20.11:53 --upstream 10.96.0.10:53 --feed https://mirror-feed:8443
              mirror-agent check --certificate /etc/mirror/tls/tls.crt --certificate /etc/mirror/tls/ca.crt
              mirror-agent check --links --context london
              kubectl -n mirror-agent exec deploy/mirror-feed -- mirror-agent check --links
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

    @Option(name: .customLong("intercept-cluster-dns"), help: ArgumentHelp("Preflight: a cluster DNS ClusterIP the agent intercepts (run --intercept-cluster-dns): whether its fail-open rules are in the kernel and the agent answers on it (repeatable).", valueName: "ip"))
    var interceptClusterDNS: [String] = []

    @Flag(help: "Check the local cluster's Links instead of the node: credentials, remote API, gateway probes.")
    var links = false

    @Option(help: ArgumentHelp("With --links: kubeconfig of the local cluster (default: $KUBECONFIG or ~/.kube/config, else the pod's service account).", valueName: "file"))
    var kubeconfig: String?

    @Option(help: ArgumentHelp("With --links: context of the kubeconfig (default: its current-context).", valueName: "name"))
    var context: String?

    @Option(help: ArgumentHelp("With --links: namespace of the Links and their Secrets (default: the pod's namespace in a pod, else mirror-agent).", valueName: "namespace"))
    var linkNamespace: String?

    @Option(help: ArgumentHelp("With --links: seconds allowed for each API request (local and remote).", valueName: "seconds"))
    var requestTimeout = 10

    @Flag(name: .customLong("allow-plain-http"), help: "With --links: allow http:// API servers, local and in the Links' Secrets (test servers only).")
    var allowPlainHTTP = false

    func validate() throws {
        if links {
            let preflight: [(String, Bool)] = [("--state", state != nil), ("--dns-listen", !dnsListen.isEmpty), ("--upstream", !upstream.isEmpty),
                                               ("--feed", feed != nil), ("--certificate", !certificates.isEmpty),
                                               ("--intercept-cluster-dns", !interceptClusterDNS.isEmpty)]
            if let flag = preflight.first(where: \.1)?.0 { throw ValidationError("--links checks the Links only; run \(flag) in a separate check") }
            guard requestTimeout > 0 else { throw ValidationError("--request-timeout must be at least 1 second") }
            return
        }
        let linkFlags: [(String, Bool)] = [("--kubeconfig", kubeconfig != nil), ("--context", context != nil),
                                           ("--link-namespace", linkNamespace != nil), ("--allow-plain-http", allowPlainHTTP)]
        if let flag = linkFlags.first(where: \.1)?.0 { throw ValidationError("\(flag) applies to --links only") }
    }

    /// Prints one √ / ! / × line per result and the tally; exit status 1 when one failed.
    static func report(_ results: [Preflight.Result]) throws {
        for result in results {
            let mark = !result.passed ? "×" : result.warning ? "!" : "√"
            // Padded, never cut: a long certificate path must stay whole.
            let name = result.name.count < 28 ? result.name.padding(toLength: 28, withPad: " ", startingAt: 0) : result.name
            print("\(mark) \(name) \(result.detail)")
        }
        let failed = results.filter { !$0.passed }.count
        print(failed == 0 ? "\nall \(results.count) checks passed" : "\n\(failed) of \(results.count) checks failed")
        if failed > 0 { throw ExitCode(1) }
    }

    func run() async throws {
        if links {
            let local: KubeConnection, inPod: Bool
            do {
                (local, inPod) = try LinkChecks.localConnection(kubeconfig: kubeconfig, context: context)
            } catch {
                try Self.report([Preflight.Result(name: "local cluster", passed: false, detail: "\(error)")])
                return
            }
            // A kubeconfig context's namespace is usually "default", not the feed's.
            let namespace = linkNamespace ?? (inPod ? local.namespace : nil) ?? "mirror-agent"
            let checks = LinkChecks(local: local, namespace: namespace, allowPlainHTTP: allowPlainHTTP,
                                    requestTimeout: .seconds(requestTimeout))
            try Self.report(await checks.run())
            return
        }
        guard let path = state else {
            try Self.report(await Preflight(dnsListen: dnsListen, upstreams: upstream, feed: feed, certificates: certificates,
                                            intercepted: interceptClusterDNS).run())
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
