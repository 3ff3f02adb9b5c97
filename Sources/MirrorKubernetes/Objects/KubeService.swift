/// A core/v1 Service: what a remote cluster exports, and what the agent creates locally as
/// a mirror.
public struct KubeService: KubeObject, Hashable {
    public static let resource = KubeResource(group: "", version: "v1", plural: "services", kind: "Service")

    public var metadata: ObjectMeta
    public var spec: KubeServiceSpec

    public init(metadata: ObjectMeta, spec: KubeServiceSpec = KubeServiceSpec()) {
        self.metadata = metadata
        self.spec = spec
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        metadata = try container.decode(ObjectMeta.self, forKey: .metadata)
        spec = try container.decodeIfPresent(KubeServiceSpec.self, forKey: .spec) ?? KubeServiceSpec()
    }
}

public struct KubeServiceSpec: Codable, Sendable, Hashable {
    /// ClusterIP, NodePort, LoadBalancer or ExternalName; unset means ClusterIP.
    public var type: String?
    /// "None" for a headless service.
    public var clusterIP: String?
    /// Both families of a dual-stack service; `clusterIPs[0]` equals `clusterIP`.
    public var clusterIPs: [String]?
    public var ports: [KubeServicePort]?
    public var selector: [String: String]?
    public var ipFamilies: [String]?
    public var ipFamilyPolicy: String?

    public init(type: String? = nil, clusterIP: String? = nil, clusterIPs: [String]? = nil,
                ports: [KubeServicePort]? = nil, selector: [String: String]? = nil) {
        self.type = type
        self.clusterIP = clusterIP
        self.clusterIPs = clusterIPs
        self.ports = ports
        self.selector = selector
    }

    /// The allocated ClusterIPs, empty for headless or not yet allocated services.
    public var allocatedClusterIPs: [String] {
        let all = clusterIPs ?? clusterIP.map { [$0] } ?? []
        return all.filter { !$0.isEmpty && $0 != "None" }
    }

    public var isHeadless: Bool { clusterIP == "None" }
}

public struct KubeServicePort: Codable, Sendable, Hashable {
    public var name: String?
    /// TCP, UDP or SCTP; unset means TCP.
    public var `protocol`: String?
    public var port: Int
    public var targetPort: IntOrString?
    public var nodePort: Int?
    public var appProtocol: String?

    public init(name: String? = nil, protocol: String? = nil, port: Int, targetPort: IntOrString? = nil) {
        self.name = name
        self.protocol = `protocol`
        self.port = port
        self.targetPort = targetPort
    }
}
