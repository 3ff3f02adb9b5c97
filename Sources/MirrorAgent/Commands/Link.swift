import ArgumentParser
import Foundation
import MirrorKubernetes
import MirrorModel

/// `mirror-agent link`: the manifests that connect this cluster to a remote one, as
/// `linkerd multicluster link` prints them.
struct Link: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print what links this cluster to a remote one: the Link and its credentials Secret (or, with --remote-rbac, the remote side's read-only access).",
        discussion: """
            Two steps, each printing YAML to pipe into kubectl; nothing is applied by this command.

            1. In the REMOTE cluster (the one whose Services are mirrored here), once: \
            `--remote-rbac` prints a Namespace, a ServiceAccount, a token Secret bound to it, \
            and a ClusterRole + ClusterRoleBinding that may only get, list and watch Services \
            and EndpointSlices — nothing else, no Secrets, no writes.

            2. For the LOCAL cluster: reads that ServiceAccount's token from the remote cluster \
            (with the --kubeconfig you give, which must be allowed to get Secrets in \
            --remote-namespace) and prints the credentials Secret cluster-credentials-NAME \
            (a kubeconfig reaching the remote API server with the CA of --kubeconfig and the \
            ServiceAccount's token, never your own credentials) and the Link NAME \
            (multicluster.linkerd.io/v1alpha3) that `mirror-agent feed --source kubernetes` \
            follows. It fails, saying what to do, when the remote side is not applied yet or \
            its token is not issued yet.

            --gateway-address is the address the local nodes reach the remote gateway at: \
            the remote gateway nodes' addresses (nodes labelled mirror-agent.io/gateway=true; \
            `kubectl --context REMOTE get nodes -l mirror-agent.io/gateway=true -o wide`), \
            or a load balancer in front of them. The Link probes GET /ready on --probe-port \
            of each (every 3 s, 2 s timeout, dead after 3 failures), which `mirror-agent \
            gateway` serves on its --probe-listen.

            The output holds a bearer token of the remote cluster: pipe it, do not commit it. \
            To revoke it, delete the remote token Secret (or the ServiceAccount).

            Examples:
              # 1. in paris, the cluster to mirror from
              mirror-agent link --remote-rbac | kubectl --context paris apply -f -
              # 2. here, in london
              mirror-agent link --kubeconfig ~/.kube/paris.yaml --cluster-name paris \\
                --gateway-address 10.99.1.2,10.99.1.3 | kubectl --context london apply -f -
              # 3. is it working?
              mirror-agent check --links --kubeconfig ~/.kube/config --context london
            """
    )

    @Flag(name: .customLong("remote-rbac"), help: "Print the remote side instead: Namespace, ServiceAccount, its token Secret, and read-only access to Services and EndpointSlices. Apply it in the remote cluster first.")
    var remoteRBAC = false

    @Option(help: ArgumentHelp("kubeconfig of the REMOTE cluster; its user must be allowed to get Secrets in --remote-namespace (only to read the ServiceAccount's token).", valueName: "file"))
    var kubeconfig: String?

    @Option(help: ArgumentHelp("Context of --kubeconfig (default: its current-context).", valueName: "name"))
    var context: String?

    @Option(help: ArgumentHelp("The remote cluster's name, a DNS label: mirrors are called <service>-<name>, the Link <name>, the Secret cluster-credentials-<name>.", valueName: "name"))
    var clusterName: String?

    @Option(help: ArgumentHelp("The remote cluster's DNS domain (Link targetClusterDomain).", valueName: "domain"))
    var clusterDomain = "cluster.local"

    @Option(help: ArgumentHelp("The remote gateways' addresses (IPs or DNS names), comma-separated or repeated: the gateway nodes' addresses, or a load balancer in front of them.", valueName: "addr,addr"))
    var gatewayAddress: [String] = []

    @Option(help: ArgumentHelp("The remote gateway's port, for exported ports without a gateway port of their own (mirror-agent.io/gateway-ports).", valueName: "port"))
    var gatewayPort = 4143

    @Option(help: ArgumentHelp("Where the remote gateways answer GET /ready: the port of `mirror-agent gateway --probe-listen`.", valueName: "port"))
    var probePort = 4191

    @Option(help: ArgumentHelp("Namespace of the Link and its Secret in THIS cluster: the feed's namespace.", valueName: "namespace"))
    var namespace = "mirror-agent"

    @Option(help: ArgumentHelp("Namespace of the ServiceAccount in the REMOTE cluster.", valueName: "namespace"))
    var remoteNamespace = "mirror-agent"

    @Option(help: ArgumentHelp("The remote ServiceAccount whose token the Link uses; the ClusterRole and its binding have the same name. Its token Secret is <name>-token.", valueName: "name"))
    var serviceAccount = "mirror-agent-remote"

    @Option(help: ArgumentHelp("The remote API server's URL as the local cluster reaches it, when --kubeconfig's is not reachable from there (a kind cluster's https://127.0.0.1:6443, say).", valueName: "url"))
    var apiServerAddress: String?

    @Option(help: ArgumentHelp("Seconds to wait for the remote API server.", valueName: "seconds"))
    var timeout = 15

    @Flag(name: .customLong("allow-plain-http"), help: "Allow an http:// API server in --kubeconfig (test servers only).")
    var allowPlainHTTP = false

    /// Every address of --gateway-address, split at commas.
    var gatewayAddresses: [String] {
        gatewayAddress.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func validate() throws {
        guard DNSLabel.isValid(remoteNamespace) else { throw ValidationError("--remote-namespace \"\(remoteNamespace)\" is not a namespace name (a DNS label)") }
        guard DNSLabel.isValidDomain(serviceAccount) else { throw ValidationError("--service-account \"\(serviceAccount)\" is not a ServiceAccount name (a DNS subdomain)") }
        if remoteRBAC {
            let given: [(String, Bool)] = [
                ("--kubeconfig", kubeconfig != nil), ("--context", context != nil), ("--cluster-name", clusterName != nil),
                ("--gateway-address", !gatewayAddress.isEmpty), ("--api-server-address", apiServerAddress != nil),
            ]
            if let flag = given.first(where: \.1)?.0 {
                throw ValidationError("--remote-rbac prints the remote side only, which needs no \(flag): apply it with kubectl --context REMOTE apply -f -, then run mirror-agent link without --remote-rbac")
            }
            return
        }
        guard let kubeconfig, !kubeconfig.isEmpty else {
            throw ValidationError("--kubeconfig is required: a kubeconfig of the REMOTE cluster (the one to mirror from), allowed to get Secrets in --remote-namespace; or --remote-rbac for the remote side's manifests")
        }
        guard let clusterName else { throw ValidationError("--cluster-name is required: the remote cluster's name, e.g. --cluster-name paris") }
        guard DNSLabel.isValid(clusterName) else {
            throw ValidationError("--cluster-name \"\(clusterName)\" must be a DNS label (lowercase letters, digits and '-', at most 63): it ends up in Service names")
        }
        let addresses = gatewayAddresses
        if addresses.isEmpty {
            let remote = context.map { "--context \($0)" } ?? "--kubeconfig \(kubeconfig)"
            throw ValidationError("""
                --gateway-address is required: where the local nodes reach \(clusterName)'s gateways — the addresses \
                of \(clusterName)'s gateway nodes (labelled mirror-agent.io/gateway=true: kubectl \(remote) get nodes \
                -l mirror-agent.io/gateway=true -o wide), or of a load balancer in front of them. \
                Several: --gateway-address 10.0.0.1,10.0.0.2
                """)
        }
        for address in addresses where IPAddressText.canonical(address) == nil && !DNSLabel.isValidDomain(address.lowercased()) {
            throw ValidationError("--gateway-address \(address) is neither an IP address nor a DNS name")
        }
        guard (1...65535).contains(gatewayPort) else { throw ValidationError("--gateway-port \(gatewayPort) is not a port (1-65535)") }
        guard (1...65535).contains(probePort) else { throw ValidationError("--probe-port \(probePort) is not a port (1-65535)") }
        guard DNSLabel.isValid(namespace) else { throw ValidationError("--namespace \"\(namespace)\" is not a namespace name (a DNS label)") }
        guard DNSLabel.isValidDomain(clusterDomain) else { throw ValidationError("--cluster-domain \"\(clusterDomain)\" is not a DNS domain") }
        if let apiServerAddress {
            let url = URL(string: apiServerAddress)
            guard ["https", "http"].contains(url?.scheme ?? ""), url?.host != nil else {
                throw ValidationError("--api-server-address \(apiServerAddress) is not an https:// URL")
            }
        }
        guard timeout > 0 else { throw ValidationError("--timeout must be at least 1 second") }
    }

    func run() async throws {
        if remoteRBAC {
            print(LinkManifests.remoteAccess(namespace: remoteNamespace, serviceAccount: serviceAccount), terminator: "")
            return
        }
        guard let kubeconfig, let clusterName else { throw ValidationError("--kubeconfig and --cluster-name are required") }
        let credentials: RemoteToken
        do {
            credentials = try await RemoteToken.read(
                kubeconfig: kubeconfig, context: context, namespace: remoteNamespace, serviceAccount: serviceAccount,
                apiServer: apiServerAddress, allowPlainHTTP: allowPlainHTTP, timeout: .seconds(timeout))
        } catch {
            printError("mirror-agent link: \(error)")
            throw ExitCode(1)
        }
        if credentials.insecureSkipTLSVerify {
            printError("mirror-agent link: warning: \(kubeconfig) skips TLS verification (insecure-skip-tls-verify); so will the printed kubeconfig")
        }
        if apiServerAddress == nil, let host = URL(string: credentials.server)?.host,
           host == "localhost" || host.hasPrefix("127.") || host == "::1" || host == "[::1]" {
            printError("mirror-agent link: warning: the remote API server is \(credentials.server), a loopback address the local cluster's feed cannot reach; give the address it can reach with --api-server-address")
        }
        if credentials.server.hasPrefix("http://") {
            printError("mirror-agent link: warning: the remote API server \(credentials.server) is plain HTTP: the feed needs --allow-plain-http to use it (test servers only)")
        }
        let local = LinkManifests.Local(clusterName: clusterName, clusterDomain: clusterDomain, namespace: namespace,
                                        gatewayAddresses: gatewayAddresses, gatewayPort: gatewayPort, probePort: probePort,
                                        credentials: credentials)
        print(local.render(), terminator: "")
    }
}
