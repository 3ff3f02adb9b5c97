/// The whole mirror state of one cluster's view: which remote clusters exist and which of
/// their services are mirrored here, and the traffic policies of local services.
///
/// This is the content of the mirror feed and of state files. It is a plain value: the
/// DNS and nftables parts never see it directly, `MirrorAgent` translates it.
public struct MirrorState: Equatable, Sendable {
    /// The cluster DNS domain mirrored names live under (`cluster.local` by default).
    public var clusterDomain: String
    /// Remote clusters, by unique name.
    public var clusters: [Cluster]
    /// Mirrored services, unique by ``MirroredService/key``.
    public var services: [MirroredService]
    /// Traffic policies of local services, unique by ``TrafficPolicy/key``.
    public var policies: [TrafficPolicy]

    public static let defaultClusterDomain = "cluster.local"

    public init(clusterDomain: String = MirrorState.defaultClusterDomain, clusters: [Cluster] = [], services: [MirroredService] = [],
                policies: [TrafficPolicy] = []) {
        self.clusterDomain = clusterDomain
        self.clusters = clusters
        self.services = services
        self.policies = policies
    }
}

/// A remote cluster and how to reach it.
public struct Cluster: Equatable, Hashable, Sendable {
    /// A DNS label; it becomes the suffix of mirrored names (`bar-<name>`).
    public var name: String
    /// The cluster's multicluster gateway; `nil` for clusters reached only by pod IPs (flat).
    public var gateway: Gateway?
    /// Whether traffic sent to this cluster leaves with the node's address (SNAT).
    public var masquerade: Bool

    public init(name: String, gateway: Gateway? = nil, masquerade: Bool = false) {
        self.name = name
        self.gateway = gateway
        self.masquerade = masquerade
    }
}

/// The entry point of a remote cluster in hierarchical networks.
public struct Gateway: Equatable, Hashable, Sendable {
    /// One or more gateway IPs; connections are spread over all of them.
    public var addresses: [String]
    /// The gateway's inbound port (Linkerd's default is 4143).
    public var port: Int
    /// The gateway's identity (for mTLS); informational here.
    public var identity: String?
    /// Whether the gateway's probe currently succeeds. A dead gateway's services are rejected.
    public var alive: Bool

    public static let defaultPort = 4143

    public init(addresses: [String], port: Int = Gateway.defaultPort, identity: String? = nil, alive: Bool = true) {
        self.addresses = addresses
        self.port = port
        self.identity = identity
        self.alive = alive
    }
}

/// How traffic to a mirrored service reaches the remote side.
public enum MirrorMode: String, CaseIterable, Equatable, Hashable, Sendable {
    /// Through the remote cluster's gateway (hierarchical networks).
    case gateway
    /// Straight to the remote pod IPs (flat networks).
    case remoteDiscovery = "remote-discovery"
    /// The union of the ready endpoints of every member cluster, named `<svc>-federated`.
    case federated
}

/// A transport protocol a mirrored port uses.
public enum L4Protocol: String, CaseIterable, Equatable, Hashable, Sendable {
    case tcp = "TCP"
    case udp = "UDP"
    case sctp = "SCTP"

    /// The IANA protocol number, as nftables' `meta l4proto` sees it.
    public var number: UInt8 {
        switch self {
        case .tcp: 6
        case .udp: 17
        case .sctp: 132
        }
    }
}

/// One port of a mirrored service.
public struct ServicePort: Equatable, Hashable, Sendable {
    /// The port's name; named ports get SRV records.
    public var name: String?
    public var `protocol`: L4Protocol
    /// The port clients connect to on the mirrored ClusterIP.
    public var port: Int
    /// The port on remote pods (remote-discovery and federated modes).
    public var targetPort: Int
    /// The gateway port for this service port when it differs from the cluster gateway's.
    public var gatewayPort: Int?

    public init(name: String? = nil, protocol: L4Protocol = .tcp, port: Int, targetPort: Int? = nil, gatewayPort: Int? = nil) {
        self.name = name
        self.protocol = `protocol`
        self.port = port
        self.targetPort = targetPort ?? port
        self.gatewayPort = gatewayPort
    }
}

/// A remote pod behind a mirrored service (pod-IP modes only).
public struct Endpoint: Equatable, Hashable, Sendable {
    public var ip: String
    /// Only ready endpoints receive traffic.
    public var ready: Bool
    /// Gives the pod its own DNS name `<hostname>.<svc>-<cluster>.<ns>.svc.<zone>`.
    public var hostname: String?
    /// The cluster that owns the pod; required for federated services.
    public var cluster: String?

    public init(ip: String, ready: Bool = true, hostname: String? = nil, cluster: String? = nil) {
        self.ip = ip
        self.ready = ready
        self.hostname = hostname
        self.cluster = cluster
    }
}

/// The identity of a mirrored service: its namespace and mirrored name.
public struct ServiceKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var namespace: String
    /// `<svc>-<cluster>` or `<svc>-federated`.
    public var mirroredName: String

    public init(namespace: String, mirroredName: String) {
        self.namespace = namespace
        self.mirroredName = mirroredName
    }

    public var description: String { "\(namespace)/\(mirroredName)" }

    /// The fully qualified DNS name under `zone`: `<mirroredName>.<ns>.svc.<zone>`.
    public func dnsName(zone: String) -> String { "\(mirroredName).\(namespace).svc.\(zone)" }

    public static func < (lhs: ServiceKey, rhs: ServiceKey) -> Bool {
        (lhs.namespace, lhs.mirroredName) < (rhs.namespace, rhs.mirroredName)
    }
}

/// A service exported by a remote cluster (or federated across several) and mirrored here.
public struct MirroredService: Equatable, Hashable, Sendable {
    /// The service's name in its own cluster.
    public var name: String
    public var namespace: String
    /// The exporting cluster; `nil` for federated services.
    public var cluster: String?
    public var mode: MirrorMode
    /// The mirrored ClusterIPs (IPv4 and/or IPv6) local clients connect to.
    public var ips: [String]
    public var ports: [ServicePort]
    /// Remote pods, for the pod-IP modes.
    public var endpoints: [Endpoint]

    public init(name: String, namespace: String, cluster: String? = nil, mode: MirrorMode,
                ips: [String], ports: [ServicePort], endpoints: [Endpoint] = []) {
        self.name = name
        self.namespace = namespace
        self.cluster = cluster
        self.mode = mode
        self.ips = ips
        self.ports = ports
        self.endpoints = endpoints
    }

    /// The name the service is known by here: `bar-paris`, or `web-federated`.
    public var mirroredName: String { "\(name)-\(mirroredNameSuffix)" }

    /// What follows `<name>-` in ``mirroredName``: the cluster, or `federated`. The one
    /// place that rule is written (keys, their hashes and the length check all use it).
    public var mirroredNameSuffix: String { mode == .federated ? "federated" : cluster ?? "" }

    public var key: ServiceKey { ServiceKey(namespace: namespace, mirroredName: mirroredName) }

    /// The fully qualified DNS name under `zone`.
    public func dnsName(zone: String) -> String { key.dnsName(zone: zone) }

    /// The clusters this service depends on: its own, or its endpoints' for federated ones.
    public var referencedClusters: Set<String> {
        var names = Set(endpoints.compactMap(\.cluster))
        if let cluster { names.insert(cluster) }
        return names
    }
}
