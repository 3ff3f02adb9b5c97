/// How the traffic of a **local** service (one of this cluster's own Services, not a mirror)
/// is shared with its remote mirrors, and where it goes when the local pods are gone
/// (issue 17; docs/architecture.md, "The mirror state").
///
/// The node agent applies it before kube-proxy: per new connection to one of ``ips`` on one
/// of ``ports``, a weighted choice among ``backends``; the local share falls through to
/// kube-proxy untouched, a mirror's share goes to that mirror's targets. While
/// ``localReady`` is false, everything goes to the first ``failover`` mirror whose cluster is
/// alive.
public struct TrafficPolicy: Equatable, Hashable, Sendable {
    /// The local Service's name (a DNS label).
    public var name: String
    public var namespace: String
    /// The local Service's ClusterIPs (v4 and/or v6). Never a mirrored service's ClusterIP.
    public var ips: [String]
    /// The ports the policy applies to; each backend and failover mirror carries every one
    /// (same number and protocol).
    public var ports: [PolicyPort]
    public var backends: [PolicyBackend]
    /// Mirrored names, in order: when the local service has no ready endpoint, all of its
    /// traffic goes to the first whose cluster is alive.
    public var failover: [String]
    /// Whether the local service has at least one ready endpoint (the feed's Kubernetes
    /// source reads it from the local EndpointSlices; the file source from the file).
    public var localReady: Bool

    public init(name: String, namespace: String, ips: [String], ports: [PolicyPort], backends: [PolicyBackend],
                failover: [String] = [], localReady: Bool = true) {
        self.name = name
        self.namespace = namespace
        self.ips = ips
        self.ports = ports
        self.backends = backends
        self.failover = failover
        self.localReady = localReady
    }

    public var key: PolicyKey { PolicyKey(namespace: namespace, name: name) }

    /// The mirrored services the policy sends traffic to (its mirror backends, then its
    /// failover mirrors not among them), once each, in that order.
    public var referencedServices: [ServiceKey] {
        var keys: [ServiceKey] = []
        for mirror in backends.compactMap(\.mirror) + failover {
            let key = ServiceKey(namespace: namespace, mirroredName: mirror)
            if !keys.contains(key) { keys.append(key) }
        }
        return keys
    }

    /// The sum of the backends' weights.
    public var totalWeight: Int { backends.reduce(0) { $0 + $1.weight } }
}

/// The identity of a ``TrafficPolicy``: the local Service's namespace and name.
public struct PolicyKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var namespace: String
    public var name: String

    public init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }

    /// `namespace/name`.
    public var description: String { "\(namespace)/\(name)" }

    public static func < (lhs: PolicyKey, rhs: PolicyKey) -> Bool {
        (lhs.namespace, lhs.name) < (rhs.namespace, rhs.name)
    }
}

/// One destination of a policy's weighted split.
public struct PolicyBackend: Equatable, Hashable, Sendable {
    /// nil: the local service itself (its share falls through to kube-proxy); else a mirrored
    /// name in the policy's namespace, e.g. "bar-paris".
    public var mirror: String?
    /// The backend's share, 0...1000, relative to the policy's total weight.
    public var weight: Int

    public static let weights = 0...1000

    public init(mirror: String? = nil, weight: Int) {
        self.mirror = mirror
        self.weight = weight
    }

    public var isLocal: Bool { mirror == nil }
}

/// A port of the local service that a policy applies to.
public struct PolicyPort: Equatable, Hashable, Sendable {
    public var name: String?
    public var `protocol`: L4Protocol
    /// The port clients connect to on the local ClusterIPs (and the mirrors' port).
    public var port: Int

    public init(name: String? = nil, protocol: L4Protocol = .tcp, port: Int) {
        self.name = name
        self.protocol = `protocol`
        self.port = port
    }
}
