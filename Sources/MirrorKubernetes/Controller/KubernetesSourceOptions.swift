import Foundation

/// How `feed --source kubernetes` runs: where Links live, how fast it writes, how replicas
/// share the writing.
public struct KubernetesSourceOptions: Sendable {
    /// The namespace of the Link objects, their credentials Secrets and the Lease.
    public var linkNamespace: String
    /// This replica's name in the Lease (the pod name in a Deployment).
    public var identity: String
    /// The local cluster's DNS domain, published with the state.
    public var clusterDomain = "cluster.local"
    /// Writes (create, update, delete of mirror Services) per second, and the burst allowed.
    public var writeQPS: Double = 50
    public var writeBurst = 100
    /// How often everything is compared again: orphans collected, failed writes retried,
    /// credentials Secrets read again.
    public var resyncInterval: Duration = .seconds(300)
    public var leaseName = "mirror-agent-feed"
    /// A leader that has not renewed for this long is replaced.
    public var leaseDuration: Duration = .seconds(15)
    /// The first state is published once every Link's remote cluster has been listed, or
    /// after this long with what is known (a cluster that cannot be reached has no services
    /// to publish yet; its existing mirror Services are kept).
    public var initialSyncTimeout: Duration = .seconds(30)
    /// Remote API servers may be plain HTTP (test servers only).
    public var allowPlainHTTPRemotes = false
    /// Changes arriving within this window are published together.
    public var coalescing: Duration = .milliseconds(20)
    /// How gateway names in Links are resolved, and how often again.
    public var gatewayResolver: any GatewayResolver = SystemGatewayResolver()
    public var gatewayResolveInterval: Duration = .seconds(30)
    /// How often the TrafficSplit resource is asked for again while the local API does not
    /// serve it (SMI's CRD not installed: no traffic policies meanwhile).
    public var trafficSplitRetryInterval: Duration = .seconds(60)
    /// The informers' settings (watch timeouts, backoff) for the local and remote watches.
    public var informer = InformerOptions()

    public init(linkNamespace: String, identity: String) {
        self.linkNamespace = linkNamespace
        self.identity = identity
    }

    /// `$POD_NAME`, else the host name: unique per replica in a Deployment.
    public static func defaultIdentity(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        environment["POD_NAME"]?.nilIfEmpty ?? ProcessInfo.processInfo.hostName
    }
}

extension String {
    var nilIfEmpty: String? { isEmpty ? nil : self }
}
