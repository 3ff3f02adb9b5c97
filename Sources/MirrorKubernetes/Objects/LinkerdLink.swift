import Foundation

/// Linkerd's `Link` (multicluster.linkerd.io/v1alpha3): one remote cluster to mirror from,
/// its gateway, the Secret holding its kubeconfig, and which of its Services to mirror.
public struct LinkerdLink: KubeObject, Hashable {
    public static let resource = KubeResource(group: "multicluster.linkerd.io", version: "v1alpha3", plural: "links",
                                              kind: "Link")

    public var metadata: ObjectMeta
    public var spec: LinkerdLinkSpec
    /// What the feed last wrote (with deploy/'s CRD, which has a status subresource); nil
    /// when absent or in another shape (Linkerd's own controller's).
    public var status: LinkStatus?

    public init(metadata: ObjectMeta, spec: LinkerdLinkSpec = LinkerdLinkSpec(), status: LinkStatus? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        metadata = try container.decode(ObjectMeta.self, forKey: .metadata)
        spec = try container.decodeIfPresent(LinkerdLinkSpec.self, forKey: .spec) ?? LinkerdLinkSpec()
        status = try? container.decodeIfPresent(LinkStatus.self, forKey: .status)
    }
}

/// The status the feed writes on each Link: the remote watch and the gateway probes, so
/// `kubectl get link -o yaml` answers "is this cluster working" without the feed's socket.
public struct LinkStatus: Codable, Sendable, Hashable {
    public struct Remote: Codable, Sendable, Hashable {
        public var connected: Bool
        public var synced: Bool
        public var stale: Bool
        public var lastError: String?
    }

    public struct GatewayAddress: Codable, Sendable, Hashable {
        public var address: String
        public var alive: Bool
        public var latencyMilliseconds: Int?
        public var lastError: String?
    }

    public struct Gateway: Codable, Sendable, Hashable {
        public var alive: Bool
        public var addresses: [GatewayAddress]
    }

    public var remote: Remote?
    public var gateway: Gateway?
    public var servicesMirrored: Int?
    /// The feed replica that wrote it, and when (RFC 3339).
    public var observedBy: String?
    public var updateTime: String?
}

/// The CRD declares ports, periods and thresholds as strings; they are kept as sent and
/// read through the typed accessors, so a malformed value is reported by the controller
/// with the Link's name rather than failing the whole watch.
public struct LinkerdLinkSpec: Codable, Sendable, Hashable {
    public var targetClusterName: String?
    public var targetClusterDomain: String?
    public var targetClusterLinkerdNamespace: String?
    /// The Secret (in the Link's namespace) whose `kubeconfig` key reaches the remote API.
    public var clusterCredentialsSecret: String?
    public var gatewayAddress: String?
    public var gatewayPort: String?
    public var gatewayIdentity: String?
    public var probeSpec: LinkerdProbeSpec?
    /// Services mirrored through the gateway.
    public var selector: LabelSelector?
    /// Services mirrored with their remote endpoints (flat networks).
    public var remoteDiscoverySelector: LabelSelector?
    /// Services joined into `<name>-federated`.
    public var federatedServiceSelector: LabelSelector?
    public var excludedAnnotations: [String]?
    public var excludedLabels: [String]?

    public init(targetClusterName: String? = nil, clusterCredentialsSecret: String? = nil,
                gatewayAddress: String? = nil, gatewayPort: String? = nil, selector: LabelSelector? = nil) {
        self.targetClusterName = targetClusterName
        self.clusterCredentialsSecret = clusterCredentialsSecret
        self.gatewayAddress = gatewayAddress
        self.gatewayPort = gatewayPort
        self.selector = selector
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        targetClusterName = try container.decodeIfPresent(String.self, forKey: .targetClusterName)
        targetClusterDomain = try container.decodeIfPresent(String.self, forKey: .targetClusterDomain)
        targetClusterLinkerdNamespace = try container.decodeIfPresent(String.self, forKey: .targetClusterLinkerdNamespace)
        clusterCredentialsSecret = try container.decodeIfPresent(String.self, forKey: .clusterCredentialsSecret)
        gatewayAddress = try container.decodeIfPresent(String.self, forKey: .gatewayAddress)
        gatewayPort = try container.decodeIfPresent(LenientString.self, forKey: .gatewayPort)?.text
        gatewayIdentity = try container.decodeIfPresent(String.self, forKey: .gatewayIdentity)
        probeSpec = try container.decodeIfPresent(LinkerdProbeSpec.self, forKey: .probeSpec)
        selector = try container.decodeIfPresent(LabelSelector.self, forKey: .selector)
        remoteDiscoverySelector = try container.decodeIfPresent(LabelSelector.self, forKey: .remoteDiscoverySelector)
        federatedServiceSelector = try container.decodeIfPresent(LabelSelector.self, forKey: .federatedServiceSelector)
        excludedAnnotations = try container.decodeIfPresent([String].self, forKey: .excludedAnnotations)
        excludedLabels = try container.decodeIfPresent([String].self, forKey: .excludedLabels)
    }

    /// `gatewayPort` as a port number, nil when unset or not a port.
    public var gatewayPortNumber: Int? { gatewayPort.flatMap(Int.init).flatMap { (1...65535).contains($0) ? $0 : nil } }

    /// `gatewayAddress` may list several addresses separated by commas.
    public var gatewayAddresses: [String] {
        (gatewayAddress ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}

public struct LinkerdProbeSpec: Codable, Sendable, Hashable {
    public var path: String?
    public var port: String?
    /// A Go duration (`3s`).
    public var period: String?
    public var timeout: String?
    public var failureThreshold: String?

    public init(path: String? = nil, port: String? = nil, period: String? = nil) {
        self.path = path
        self.port = port
        self.period = period
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        path = try container.decodeIfPresent(String.self, forKey: .path)
        port = try container.decodeIfPresent(LenientString.self, forKey: .port)?.text
        period = try container.decodeIfPresent(String.self, forKey: .period)
        timeout = try container.decodeIfPresent(String.self, forKey: .timeout)
        failureThreshold = try container.decodeIfPresent(LenientString.self, forKey: .failureThreshold)?.text
    }
}

/// A string field that older Links or hand-written manifests sometimes give as a number.
private struct LenientString: Decodable {
    var text: String

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int.self) {
            text = String(number)
        } else {
            text = try container.decode(String.self)
        }
    }
}

