import ArgumentParser
import Foundation
import Logging
import MirrorKubernetes

/// `feed --source kubernetes`: where the Links are, how the feed reaches its own cluster,
/// how fast it writes mirror Services, how replicas share the writing.
struct FeedKubernetesOptions: ParsableArguments {
    @Option(help: ArgumentHelp("kubeconfig of the local cluster (default: the pod's service account, in a cluster).", valueName: "file"))
    var kubeconfig: String?

    @Option(help: ArgumentHelp("Context of --kubeconfig (default: its current-context).", valueName: "name"))
    var context: String?

    @Option(help: ArgumentHelp("Namespace of the Link objects, their credentials Secrets and the Lease (default: the pod's namespace, else the kubeconfig context's, else mirror-agent).", valueName: "namespace"))
    var linkNamespace: String?

    @Option(help: ArgumentHelp("DNS domain of the local cluster, published with the state.", valueName: "domain"))
    var clusterDomain = "cluster.local"

    @Option(help: ArgumentHelp("Writes of mirror Services per second to the local API server (client-go's 5 makes large Links crawl).", valueName: "qps"))
    var writeQPS: Double = 50

    @Option(help: ArgumentHelp("Writes allowed at once before --write-qps applies.", valueName: "count"))
    var writeBurst = 100

    @Option(help: ArgumentHelp("Seconds between full passes: orphan mirror Services collected, failed writes (name clash, missing namespace) retried, credentials Secrets read again.", valueName: "seconds"))
    var resyncInterval = 300

    @Option(help: ArgumentHelp("Lease (in --link-namespace) that elects the one replica writing mirror Services.", valueName: "name"))
    var leaseName = "mirror-agent-feed"

    @Option(help: ArgumentHelp("Seconds a leader may go without renewing the Lease before another replica takes over.", valueName: "seconds"))
    var leaseDuration = 15

    @Option(help: ArgumentHelp("This replica's name in the Lease (default: $POD_NAME, else the host name).", valueName: "name"))
    var identity: String?

    @Option(help: ArgumentHelp("Seconds to wait for every Link's remote cluster before publishing the first state without the ones not reached (their mirror Services are kept).", valueName: "seconds"))
    var initialSyncTimeout = 30

    @Flag(name: .customLong("allow-plain-http"), help: "Allow http:// API servers, in --kubeconfig and in the Links' credentials Secrets (test servers only).")
    var allowPlainHTTP = false

    func validate(source: String) throws {
        let kubernetes = source == "kubernetes"
        if !kubernetes {
            let given = [("--kubeconfig", kubeconfig), ("--context", context), ("--link-namespace", linkNamespace), ("--identity", identity)]
            if let flag = given.first(where: { $0.1 != nil })?.0 {
                throw ValidationError("\(flag) applies to --source kubernetes only")
            }
            return
        }
        if context != nil, kubeconfig == nil { throw ValidationError("--context needs --kubeconfig") }
        guard writeQPS > 0, writeBurst > 0 else { throw ValidationError("--write-qps and --write-burst must be positive") }
        guard resyncInterval > 0 else { throw ValidationError("--resync-interval must be at least 1 second") }
        guard leaseDuration >= 3 else { throw ValidationError("--lease-duration must be at least 3 seconds (it is renewed every third of it)") }
        guard initialSyncTimeout >= 0 else { throw ValidationError("--initial-sync-timeout cannot be negative") }
    }

    /// The local cluster's client and the source's options. Throws a message naming the file
    /// or the missing service account.
    func makeSource(logger: Logger) throws -> (KubeClient, KubernetesSourceOptions) {
        let connection = try kubeconfig.map { try KubeConfig.load(path: $0).connection(context: context) }
            ?? KubeConnection.inCluster()
        var clientOptions = KubeClientOptions()
        clientOptions.allowPlainHTTP = allowPlainHTTP
        let client = try KubeClient(connection: connection, options: clientOptions, logger: logger)
        var options = KubernetesSourceOptions(linkNamespace: linkNamespace ?? connection.namespace ?? "mirror-agent",
                                              identity: identity ?? KubernetesSourceOptions.defaultIdentity())
        options.clusterDomain = clusterDomain
        options.writeQPS = writeQPS
        options.writeBurst = writeBurst
        options.resyncInterval = .seconds(resyncInterval)
        options.leaseName = leaseName
        options.leaseDuration = .seconds(leaseDuration)
        options.initialSyncTimeout = .seconds(initialSyncTimeout)
        options.allowPlainHTTPRemotes = allowPlainHTTP
        return (client, options)
    }
}
