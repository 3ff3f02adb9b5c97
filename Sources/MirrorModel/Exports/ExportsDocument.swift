import Foundation

/// What a gateway node of an exporting cluster serves: the cluster's exported services, each
/// service port with the stable gateway port importing clusters send its traffic to, and the
/// endpoints behind it.
///
/// The gateway programs `gatewayAddress . protocol . gatewayPort → endpoint:targetPort`;
/// importing nodes learn the same gateway ports through the mirror state, so a gateway port
/// must not change while its service is exported.
public struct ExportsDocument: Equatable, Sendable {
    /// The exporting cluster's name (a DNS label), as importing clusters know it.
    public var cluster: String
    /// The addresses this cluster's gateways listen on, in canonical text.
    public var gatewayAddresses: [String]
    /// Unique by ``ExportedService/key``.
    public var exports: [ExportedService]

    public init(cluster: String, gatewayAddresses: [String], exports: [ExportedService] = []) {
        self.cluster = cluster
        self.gatewayAddresses = gatewayAddresses
        self.exports = exports
    }
}

/// One exported service of the cluster.
public struct ExportedService: Equatable, Hashable, Sendable {
    public var name: String
    public var namespace: String
    public var ports: [ExportedPort]
    /// The service's pods; only ready ones receive traffic.
    public var endpoints: [ExportEndpoint]

    public init(name: String, namespace: String, ports: [ExportedPort], endpoints: [ExportEndpoint] = []) {
        self.name = name
        self.namespace = namespace
        self.ports = ports
        self.endpoints = endpoints
    }

    /// `namespace/name`, unique in a document.
    public var key: String { "\(namespace)/\(name)" }
}

/// One port of an exported service and the gateway port that reaches it.
public struct ExportedPort: Equatable, Hashable, Sendable {
    /// The service port's name, when the service names it.
    public var name: String?
    public var `protocol`: L4Protocol
    /// The service port (what importing clusters' clients connect to).
    public var port: Int
    /// The port on the pods, which the gateway DNATs to.
    public var targetPort: Int
    /// The port on the gateway addresses that leads to this service port; unique per protocol
    /// across the whole document, since it alone names the service in a packet.
    public var gatewayPort: Int

    public init(name: String? = nil, protocol: L4Protocol = .tcp, port: Int, targetPort: Int? = nil, gatewayPort: Int) {
        self.name = name
        self.protocol = `protocol`
        self.port = port
        self.targetPort = targetPort ?? port
        self.gatewayPort = gatewayPort
    }
}

/// A pod behind an exported service.
public struct ExportEndpoint: Equatable, Hashable, Sendable {
    /// The pod IP, in canonical text.
    public var ip: String
    /// Only ready endpoints receive traffic.
    public var ready: Bool

    public init(ip: String, ready: Bool = true) {
        self.ip = ip
        self.ready = ready
    }
}

/// The gateway ports a cluster may hand out, `FROM-TO` inclusive.
public struct GatewayPortRange: Sendable, Equatable, CustomStringConvertible {
    public let lower: Int
    public let upper: Int

    /// 20000–29999: below Linux's default ephemeral range (32768–60999), which the gateway
    /// host's own outbound connections and masquerade's source ports draw from, and below
    /// Kubernetes' NodePort range (30000–32767), since gateway nodes usually run kube-proxy
    /// too. A gateway port in either range could collide with a live connection or a NodePort.
    public static let `default` = GatewayPortRange(checkedLower: 20000, upper: 29999)

    /// Every port: for a feed, which checks a document's structure and leaves the range to
    /// each gateway.
    public static let any = GatewayPortRange(checkedLower: 1, upper: 65535)

    /// A range of valid ports, `lower ≤ upper`; nil otherwise.
    public init?(lower: Int, upper: Int) {
        guard 1 <= lower, lower <= upper, upper <= 65535 else { return nil }
        self.init(checkedLower: lower, upper: upper)
    }

    /// Parses `FROM-TO`, as a command-line flag gives it (`20000-29999`).
    public init?(parsing text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2,
              let lower = Int(parts[0].trimmingCharacters(in: .whitespaces)),
              let upper = Int(parts[1].trimmingCharacters(in: .whitespaces)) else { return nil }
        self.init(lower: lower, upper: upper)
    }

    private init(checkedLower lower: Int, upper: Int) {
        self.lower = lower
        self.upper = upper
    }

    public func contains(_ port: Int) -> Bool { lower <= port && port <= upper }

    public var description: String { "\(lower)-\(upper)" }
}

// MARK: - JSON

// The JSON form decodes with the same defaults as a document (protocol TCP, targetPort = port,
// ready true, empty lists) so that a feed can carry exactly what a file holds.

extension ExportsDocument: Codable {
    private enum CodingKeys: String, CodingKey { case cluster, gatewayAddresses, exports }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        cluster = try container.decode(String.self, forKey: .cluster)
        gatewayAddresses = try container.decode([String].self, forKey: .gatewayAddresses)
        exports = try container.decodeIfPresent([ExportedService].self, forKey: .exports) ?? []
    }

    /// Canonical JSON: sorted keys and no nil fields, so equal documents give equal bytes
    /// (a feed or a checksum can compare them without decoding).
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

extension ExportedService: Codable {
    private enum CodingKeys: String, CodingKey { case name, namespace, ports, endpoints }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        namespace = try container.decode(String.self, forKey: .namespace)
        ports = try container.decodeIfPresent([ExportedPort].self, forKey: .ports) ?? []
        endpoints = try container.decodeIfPresent([ExportEndpoint].self, forKey: .endpoints) ?? []
    }
}

extension ExportedPort: Codable {
    private enum CodingKeys: String, CodingKey { case name, `protocol`, port, targetPort, gatewayPort }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decodeIfPresent(String.self, forKey: .name)
        self.protocol = try container.decodeIfPresent(L4Protocol.self, forKey: .protocol) ?? .tcp
        port = try container.decode(Int.self, forKey: .port)
        targetPort = try container.decodeIfPresent(Int.self, forKey: .targetPort) ?? port
        gatewayPort = try container.decode(Int.self, forKey: .gatewayPort)
    }
}

extension ExportEndpoint: Codable {
    private enum CodingKeys: String, CodingKey { case ip, ready }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        ip = try container.decode(String.self, forKey: .ip)
        ready = try container.decodeIfPresent(Bool.self, forKey: .ready) ?? true
    }
}
