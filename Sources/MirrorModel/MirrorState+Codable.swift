import Foundation

// JSON form of the mirror state, used by the feed and for canonical output. Decoding fills
// the same defaults as state files; encoding is deterministic (sorted keys, no nil fields).

extension MirrorState: Codable {
    private enum CodingKeys: String, CodingKey, CaseIterable { case clusterDomain, clusters, services, policies }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try rejectUnknownKeys(decoder, known: CodingKeys.self)
        clusterDomain = try c.decodeIfPresent(String.self, forKey: .clusterDomain) ?? MirrorState.defaultClusterDomain
        clusters = try c.decodeIfPresent([Cluster].self, forKey: .clusters) ?? []
        services = try c.decodeIfPresent([MirroredService].self, forKey: .services) ?? []
        policies = try c.decodeIfPresent([TrafficPolicy].self, forKey: .policies) ?? []
    }

    /// `policies` only when there are some, so a state without policies is the same bytes
    /// as before they existed (and readers that predate them still read it).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(clusterDomain, forKey: .clusterDomain)
        try c.encode(clusters, forKey: .clusters)
        try c.encode(services, forKey: .services)
        if !policies.isEmpty { try c.encode(policies, forKey: .policies) }
    }

    /// Canonical JSON: sorted keys, so equal states give equal bytes.
    public func canonicalJSON(pretty: Bool = false) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

extension Cluster: Codable {
    private enum CodingKeys: String, CodingKey, CaseIterable { case name, gateway, masquerade }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try rejectUnknownKeys(decoder, known: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        gateway = try c.decodeIfPresent(Gateway.self, forKey: .gateway)
        masquerade = try c.decodeIfPresent(Bool.self, forKey: .masquerade) ?? false
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encodeIfPresent(gateway, forKey: .gateway)
        try c.encode(masquerade, forKey: .masquerade)
    }
}

extension Gateway: Codable {
    private enum CodingKeys: String, CodingKey, CaseIterable { case addresses, port, identity, alive }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try rejectUnknownKeys(decoder, known: CodingKeys.self)
        addresses = try c.decode([String].self, forKey: .addresses)
        port = try c.decodeIfPresent(Int.self, forKey: .port) ?? Gateway.defaultPort
        identity = try c.decodeIfPresent(String.self, forKey: .identity)
        alive = try c.decodeIfPresent(Bool.self, forKey: .alive) ?? true
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(addresses, forKey: .addresses)
        try c.encode(port, forKey: .port)
        try c.encodeIfPresent(identity, forKey: .identity)
        try c.encode(alive, forKey: .alive)
    }
}

extension MirrorMode: Codable {}
extension L4Protocol: Codable {}

extension ServicePort: Codable {
    private enum CodingKeys: String, CodingKey, CaseIterable { case name, `protocol`, port, targetPort, gatewayPort }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try rejectUnknownKeys(decoder, known: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        self.protocol = try c.decodeIfPresent(L4Protocol.self, forKey: .protocol) ?? .tcp
        port = try c.decode(Int.self, forKey: .port)
        targetPort = try c.decodeIfPresent(Int.self, forKey: .targetPort) ?? port
        gatewayPort = try c.decodeIfPresent(Int.self, forKey: .gatewayPort)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(name, forKey: .name)
        try c.encode(self.protocol, forKey: .protocol)
        try c.encode(port, forKey: .port)
        try c.encode(targetPort, forKey: .targetPort)
        try c.encodeIfPresent(gatewayPort, forKey: .gatewayPort)
    }
}

extension Endpoint: Codable {
    private enum CodingKeys: String, CodingKey, CaseIterable { case ip, ready, hostname, cluster }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try rejectUnknownKeys(decoder, known: CodingKeys.self)
        ip = try c.decode(String.self, forKey: .ip)
        ready = try c.decodeIfPresent(Bool.self, forKey: .ready) ?? true
        hostname = try c.decodeIfPresent(String.self, forKey: .hostname)
        cluster = try c.decodeIfPresent(String.self, forKey: .cluster)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(ip, forKey: .ip)
        try c.encode(ready, forKey: .ready)
        try c.encodeIfPresent(hostname, forKey: .hostname)
        try c.encodeIfPresent(cluster, forKey: .cluster)
    }
}

extension MirroredService: Codable {
    private enum CodingKeys: String, CodingKey, CaseIterable { case name, namespace, cluster, mode, ips, ports, endpoints }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try rejectUnknownKeys(decoder, known: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        namespace = try c.decode(String.self, forKey: .namespace)
        cluster = try c.decodeIfPresent(String.self, forKey: .cluster)
        mode = try c.decode(MirrorMode.self, forKey: .mode)
        ips = try c.decode([String].self, forKey: .ips)
        ports = try c.decodeIfPresent([ServicePort].self, forKey: .ports) ?? []
        endpoints = try c.decodeIfPresent([Endpoint].self, forKey: .endpoints) ?? []
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(namespace, forKey: .namespace)
        try c.encodeIfPresent(cluster, forKey: .cluster)
        try c.encode(mode, forKey: .mode)
        try c.encode(ips, forKey: .ips)
        try c.encode(ports, forKey: .ports)
        if !endpoints.isEmpty { try c.encode(endpoints, forKey: .endpoints) }
    }
}

extension TrafficPolicy: Codable {
    private enum CodingKeys: String, CodingKey, CaseIterable { case name, namespace, ips, ports, backends, failover, localReady }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try rejectUnknownKeys(decoder, known: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        namespace = try c.decode(String.self, forKey: .namespace)
        ips = try c.decode([String].self, forKey: .ips)
        ports = try c.decode([PolicyPort].self, forKey: .ports)
        backends = try c.decode([PolicyBackend].self, forKey: .backends)
        failover = try c.decodeIfPresent([String].self, forKey: .failover) ?? []
        localReady = try c.decodeIfPresent(Bool.self, forKey: .localReady) ?? true
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(namespace, forKey: .namespace)
        try c.encode(ips, forKey: .ips)
        try c.encode(ports, forKey: .ports)
        try c.encode(backends, forKey: .backends)
        try c.encode(failover, forKey: .failover)
        try c.encode(localReady, forKey: .localReady)
    }
}

extension PolicyPort: Codable {
    private enum CodingKeys: String, CodingKey, CaseIterable { case name, `protocol`, port }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try rejectUnknownKeys(decoder, known: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        self.protocol = try c.decodeIfPresent(L4Protocol.self, forKey: .protocol) ?? .tcp
        port = try c.decode(Int.self, forKey: .port)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(name, forKey: .name)
        try c.encode(self.protocol, forKey: .protocol)
        try c.encode(port, forKey: .port)
    }
}

/// A backend is `{"local": true, "weight": W}` or `{"mirror": "bar-paris", "weight": W}`;
/// anything else (both, neither, `local: false` without a mirror) is refused.
extension PolicyBackend: Codable {
    private enum CodingKeys: String, CodingKey, CaseIterable { case local, mirror, weight }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try rejectUnknownKeys(decoder, known: CodingKeys.self)
        let local = try c.decodeIfPresent(Bool.self, forKey: .local)
        mirror = try c.decodeIfPresent(String.self, forKey: .mirror)
        weight = try c.decode(Int.self, forKey: .weight)
        guard Self.isWellFormed(local: local, mirror: mirror) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: Self.shapeMessage))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if let mirror {
            try c.encode(mirror, forKey: .mirror)
        } else {
            try c.encode(true, forKey: .local)
        }
        try c.encode(weight, forKey: .weight)
    }

    /// Whether a backend's `local` and `mirror` fields (nil when absent) name exactly one
    /// destination: the local service (`local: true`) or a mirror (`local` absent or false).
    static func isWellFormed(local: Bool?, mirror: String?) -> Bool {
        mirror == nil ? local == true : local != true
    }

    static let shapeMessage = "a backend is either {local: true, weight: W} or {mirror: NAME, weight: W}"
}

extension CodingUserInfoKey {
    /// Set to `true` to make decoding fail on fields the model does not know (typos).
    static let strictMirrorState = CodingUserInfoKey(rawValue: "mirror-agent.strict")!
}

private struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// In strict mode, throws when the object at `decoder` has a field outside `known`.
private func rejectUnknownKeys<Key: CodingKey & CaseIterable>(_ decoder: Decoder, known: Key.Type) throws {
    guard decoder.userInfo[.strictMirrorState] as? Bool == true else { return }
    let present = try decoder.container(keyedBy: AnyCodingKey.self).allKeys
    let names = Set(Key.allCases.map(\.stringValue))
    if let unknown = present.first(where: { !names.contains($0.stringValue) }) {
        throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [unknown], debugDescription: "unknown field"))
    }
}
