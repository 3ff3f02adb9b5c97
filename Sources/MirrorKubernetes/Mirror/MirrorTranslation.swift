import MirrorModel

/// What one remote cluster's Link and informer caches hold: the input of ``MirrorTranslator``.
public struct MirrorLinkInput: Sendable, Hashable {
    /// The Link (local cluster) naming the remote cluster, its gateway and its selectors.
    public var link: LinkerdLink
    /// The remote cluster's Services, as its informer caches them (any namespaces).
    public var services: [KubeService]
    /// The remote cluster's EndpointSlices, as its informer caches them.
    public var endpointSlices: [KubeEndpointSlice]
    /// Whether the gateway answers its probe (true when the Link is not probed).
    public var gatewayAlive: Bool
    /// The gateway addresses to publish when the controller resolved and probed them (names
    /// in `gatewayAddress` resolved, dead addresses left out while others live); nil: the
    /// Link's own entries, which must then be IP addresses.
    public var gatewayAddresses: [String]?
    /// Whether traffic to this cluster is masqueraded (SNAT to the node's address).
    public var masquerade: Bool

    public init(link: LinkerdLink, services: [KubeService] = [], endpointSlices: [KubeEndpointSlice] = [],
                gatewayAlive: Bool = true, gatewayAddresses: [String]? = nil, masquerade: Bool = false) {
        self.link = link
        self.gatewayAddresses = gatewayAddresses
        self.services = services
        self.endpointSlices = endpointSlices
        self.gatewayAlive = gatewayAlive
        self.masquerade = masquerade
    }
}

/// The result of a translation: the mirror state's part, the local mirror Services to keep
/// (including those still waiting for a ClusterIP), and what was left out.
public struct MirrorTranslation: Sendable, Equatable {
    public var clusters: [Cluster]
    /// Only services whose local ClusterIPs are known; each validates.
    public var services: [MirroredService]
    /// The local Services the controller keeps in place (`<svc>-<cluster>`, `<svc>-federated`),
    /// sorted by key. A Service is desired even when its ClusterIP is not allocated yet:
    /// creating it is how the local API server allocates one.
    public var mirrorServices: [KubeService]
    /// Everything left out, with the reason.
    public var skipped: [MirrorSkip]

    public init(clusters: [Cluster] = [], services: [MirroredService] = [], mirrorServices: [KubeService] = [],
                skipped: [MirrorSkip] = []) {
        self.clusters = clusters
        self.services = services
        self.mirrorServices = mirrorServices
        self.skipped = skipped
    }

    /// The mirror state made of this translation's clusters and services.
    public func state(clusterDomain: String = MirrorState.defaultClusterDomain) -> MirrorState {
        MirrorState(clusterDomain: clusterDomain, clusters: clusters, services: services)
    }

    mutating func append(_ other: MirrorTranslation) {
        clusters += other.clusters
        services += other.services
        mirrorServices += other.mirrorServices
        skipped += other.skipped
    }
}

/// One thing the translation left out (a Link, a Service, a port, an endpoint or an
/// annotation entry) and why.
public struct MirrorSkip: Sendable, Hashable, CustomStringConvertible {
    /// The remote cluster concerned (the Link's target cluster, or the Link's key when its
    /// cluster name is unusable); nil for a federated service as a whole.
    public var cluster: String?
    /// What was skipped: `Link ns/name`, `Service ns/name`, `Service ns/name port http`,
    /// `EndpointSlice ns/name`, `ns/bar-federated`, …
    public var object: String
    public var reason: Reason

    public init(cluster: String?, object: String, reason: Reason) {
        self.cluster = cluster
        self.object = object
        self.reason = reason
    }

    public enum Reason: Sendable, Hashable, CustomStringConvertible {
        /// The Link has no usable `targetClusterName` (missing or not a DNS label).
        case invalidClusterName(String)
        /// Another Link already names this cluster.
        case duplicateCluster
        /// A Link selector cannot be evaluated (unknown operator, …); it matches nothing.
        case invalidSelector(String)
        /// A `gatewayAddress` entry that is not an IP address (names are not resolved here).
        case invalidGatewayAddress(String)
        /// `gatewayPort` is set but is not a port; Linkerd's default is used.
        case invalidGatewayPort(String)
        /// A gateway-mode Service of a Link without a usable gateway address.
        case noGateway
        /// The Service or namespace name is not a DNS label.
        case invalidName
        /// `<svc>-<cluster>` (or `<svc>-federated`) is longer than a DNS label's 63 characters.
        case mirroredNameTooLong(String)
        /// The Service is being deleted.
        case beingDeleted
        /// ExternalName Services have no ports to mirror.
        case unsupportedType(String)
        /// A port whose protocol the mirror cannot carry.
        case unsupportedProtocol(String)
        /// A port whose number or name the state model rejects.
        case invalidPort(String)
        /// A second port with the same number and protocol.
        case duplicatePort
        /// No port is left to mirror.
        case noPorts
        /// The local mirror Service has no ClusterIP yet (it is desired; it will get one).
        case awaitingClusterIP
        /// A local ClusterIP that is not an IP address.
        case invalidLocalClusterIP(String)
        /// A named `targetPort` that no EndpointSlice of the Service resolves.
        case unresolvedTargetPort(String)
        /// An EndpointSlice whose resolved ports differ from the ones chosen for the service
        /// (the state holds one `targetPort` per port); its endpoints are left out.
        case targetPortMismatch
        /// An FQDN EndpointSlice, or an endpoint address that is not an IP address.
        case unsupportedAddress(String)
        /// The same endpoint IP twice (kept once); across clusters, the first cluster keeps it.
        case duplicateEndpoint(String)
        /// An endpoint hostname that is not a DNS label; the endpoint is kept without it.
        case invalidHostname(String)
        /// A federated member whose ports differ from the federated service's.
        case federatedPortsMismatch
        /// An entry of the gateway-ports annotation that cannot be read or names no port.
        case invalidGatewayPortsAnnotation(String)
        /// The Link requires gateway ports (`mirror-agent.io/gateway-ports-required`) and the
        /// exporting side has not written this port's yet.
        case awaitingGatewayPort
        /// The state model rejected the service anyway (a safety net; should not happen).
        case invalidState(String)

        public var description: String {
            switch self {
            case .invalidClusterName(let name): "target cluster name \"\(name)\" is not a DNS label"
            case .duplicateCluster: "another Link already mirrors this cluster"
            case .invalidSelector(let message): "selector: \(message)"
            case .invalidGatewayAddress(let address): "gateway address \"\(address)\" is not an IP address"
            case .invalidGatewayPort(let port): "gateway port \"\(port)\" is not a port; using \(Gateway.defaultPort)"
            case .noGateway: "gateway mode, but the Link has no usable gateway address"
            case .invalidName: "name or namespace is not a DNS label"
            case .mirroredNameTooLong(let name): "mirrored name \"\(name)\" is longer than 63 characters"
            case .beingDeleted: "being deleted"
            case .unsupportedType(let type): "type \(type) cannot be mirrored"
            case .unsupportedProtocol(let proto): "protocol \(proto) is not supported (TCP, UDP, SCTP)"
            case .invalidPort(let message): message
            case .duplicatePort: "duplicate port number and protocol"
            case .noPorts: "no port to mirror"
            case .awaitingClusterIP: "no local ClusterIP allocated yet"
            case .invalidLocalClusterIP(let ip): "local ClusterIP \"\(ip)\" is not an IP address"
            case .unresolvedTargetPort(let name): "target port \"\(name)\" is not resolved by any EndpointSlice"
            case .targetPortMismatch: "its ports resolve to other target ports than the service's other slices"
            case .unsupportedAddress(let address): "\"\(address)\" is not an IP address (FQDN slices and odd addresses are not mirrored)"
            case .duplicateEndpoint(let ip): "duplicate endpoint \(ip)"
            case .invalidHostname(let hostname): "hostname \"\(hostname)\" is not a DNS label; dropped"
            case .federatedPortsMismatch: "its ports differ from the federated service's"
            case .invalidGatewayPortsAnnotation(let entry): "gateway-ports annotation: \(entry)"
            case .awaitingGatewayPort: "no gateway port from the exporting cluster yet (the Link requires one); not mirrored until it is written"
            case .invalidState(let issue): "rejected by the state model: \(issue)"
            }
        }
    }

    public var description: String {
        (cluster.map { "[\($0)] " } ?? "") + "\(object): \(reason)"
    }
}
