/// A discovery.k8s.io/v1 EndpointSlice: the pod addresses behind a remote service, for the
/// remote-discovery and federated modes.
public struct KubeEndpointSlice: KubeObject, Hashable {
    public static let resource = KubeResource(group: "discovery.k8s.io", version: "v1", plural: "endpointslices",
                                              kind: "EndpointSlice")
    /// The label naming the Service a slice belongs to.
    public static let serviceNameLabel = "kubernetes.io/service-name"

    public var metadata: ObjectMeta
    /// IPv4, IPv6 or FQDN.
    public var addressType: String
    public var endpoints: [KubeEndpoint]
    public var ports: [KubeEndpointPort]?

    public init(metadata: ObjectMeta, addressType: String = "IPv4", endpoints: [KubeEndpoint] = [],
                ports: [KubeEndpointPort]? = nil) {
        self.metadata = metadata
        self.addressType = addressType
        self.endpoints = endpoints
        self.ports = ports
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        metadata = try container.decode(ObjectMeta.self, forKey: .metadata)
        addressType = try container.decode(String.self, forKey: .addressType)
        // An empty slice may say `"endpoints": null`.
        endpoints = try container.decodeIfPresent([KubeEndpoint].self, forKey: .endpoints) ?? []
        ports = try container.decodeIfPresent([KubeEndpointPort].self, forKey: .ports)
    }

    /// The Service this slice belongs to, from its label.
    public var serviceName: String? { metadata.labels?[Self.serviceNameLabel] }
}

public struct KubeEndpoint: Codable, Sendable, Hashable {
    public var addresses: [String]
    public var conditions: KubeEndpointConditions?
    public var hostname: String?
    public var nodeName: String?
    public var zone: String?

    public init(addresses: [String], conditions: KubeEndpointConditions? = nil, hostname: String? = nil) {
        self.addresses = addresses
        self.conditions = conditions
        self.hostname = hostname
    }

    /// The API says an unset `ready` is to be read as ready.
    public var isReady: Bool { conditions?.ready ?? true }
}

public struct KubeEndpointConditions: Codable, Sendable, Hashable {
    public var ready: Bool?
    public var serving: Bool?
    public var terminating: Bool?

    public init(ready: Bool? = nil, serving: Bool? = nil, terminating: Bool? = nil) {
        self.ready = ready
        self.serving = serving
        self.terminating = terminating
    }
}

public struct KubeEndpointPort: Codable, Sendable, Hashable {
    public var name: String?
    public var `protocol`: String?
    /// Unset means "all ports" in the API; the mirror treats it as unusable.
    public var port: Int?
    public var appProtocol: String?

    public init(name: String? = nil, protocol: String? = nil, port: Int?) {
        self.name = name
        self.protocol = `protocol`
        self.port = port
    }
}
