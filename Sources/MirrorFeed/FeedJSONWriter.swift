import NIOCore
import MirrorModel

/// Writes the mirror state's JSON form straight into a `ByteBuffer`, in the same shape as the
/// `Codable` conformances (`MirrorState+Codable.swift`: keys sorted, optional fields left out
/// when nil, `endpoints` and `policies` only when there are some).
///
/// `JSONEncoder` builds a generic value tree first: a 100k-service state took ~3 s to
/// persist and as long to encode as a snapshot. This writer costs a small fraction of that.
/// Its output is plain JSON that `JSONDecoder` and ``StateJSONDecoder`` both read;
/// `FeedFastDecodingTests` checks the round trip, including strings that need escapes.
struct FeedJSONWriter {
    private(set) var buffer: ByteBuffer

    init(capacity: Int = 1024, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        buffer = allocator.buffer(capacity: capacity)
    }

    // MARK: model

    mutating func write(_ state: MirrorState) {
        raw("{\"clusterDomain\":")
        string(state.clusterDomain)
        raw(",\"clusters\":")
        array(state.clusters) { $0.write($1) }
        if !state.policies.isEmpty {
            raw(",\"policies\":")
            array(state.policies) { $0.write($1) }
        }
        raw(",\"services\":")
        array(state.services) { $0.write($1) }
        raw("}")
    }

    /// A store's state in the same shape, services in the store's own order: sorting 100k
    /// services costs more than writing them, and readers do not need the order.
    mutating func write(unsorted store: MirrorStore) {
        raw("{\"clusterDomain\":")
        string(store.clusterDomain)
        raw(",\"clusters\":")
        array(store.clusters.values) { $0.write($1) }
        if !store.policies.isEmpty {
            raw(",\"policies\":")
            array(store.policies.values) { $0.write($1) }
        }
        raw(",\"services\":")
        array(store.services.values) { $0.write($1) }
        raw("}")
    }

    mutating func write(_ cluster: Cluster) {
        raw("{")
        if let gateway = cluster.gateway {
            raw("\"gateway\":{\"addresses\":")
            array(gateway.addresses) { $0.string($1) }
            raw(",\"alive\":")
            bool(gateway.alive)
            if let identity = gateway.identity {
                raw(",\"identity\":")
                string(identity)
            }
            raw(",\"port\":")
            int(gateway.port)
            raw("},")
        }
        raw("\"masquerade\":")
        bool(cluster.masquerade)
        raw(",\"name\":")
        string(cluster.name)
        raw("}")
    }

    mutating func write(_ service: MirroredService) {
        raw("{")
        leadingMember("cluster", service.cluster)
        if !service.endpoints.isEmpty {
            raw("\"endpoints\":")
            array(service.endpoints) { $0.write($1) }
            raw(",")
        }
        raw("\"ips\":")
        array(service.ips) { $0.string($1) }
        raw(",\"mode\":")
        string(service.mode.rawValue)
        raw(",\"name\":")
        string(service.name)
        raw(",\"namespace\":")
        string(service.namespace)
        raw(",\"ports\":")
        array(service.ports) { $0.write($1) }
        raw("}")
    }

    mutating func write(_ port: ServicePort) {
        raw("{")
        leadingMember("gatewayPort", port.gatewayPort.map { .int($0) })
        leadingMember("name", port.name)
        raw("\"port\":")
        int(port.port)
        raw(",\"protocol\":")
        string(port.protocol.rawValue)
        raw(",\"targetPort\":")
        int(port.targetPort)
        raw("}")
    }

    mutating func write(_ endpoint: Endpoint) {
        raw("{")
        leadingMember("cluster", endpoint.cluster)
        leadingMember("hostname", endpoint.hostname)
        raw("\"ip\":")
        string(endpoint.ip)
        raw(",\"ready\":")
        bool(endpoint.ready)
        raw("}")
    }

    mutating func write(_ policy: TrafficPolicy) {
        raw("{\"backends\":")
        array(policy.backends) { $0.write($1) }
        raw(",\"failover\":")
        array(policy.failover) { $0.string($1) }
        raw(",\"ips\":")
        array(policy.ips) { $0.string($1) }
        raw(",\"localReady\":")
        bool(policy.localReady)
        raw(",\"name\":")
        string(policy.name)
        raw(",\"namespace\":")
        string(policy.namespace)
        raw(",\"ports\":")
        array(policy.ports) { $0.write($1) }
        raw("}")
    }

    mutating func write(_ backend: PolicyBackend) {
        raw("{")
        if let mirror = backend.mirror {
            raw("\"mirror\":")
            string(mirror)
        } else {
            raw("\"local\":true")
        }
        raw(",\"weight\":")
        int(backend.weight)
        raw("}")
    }

    mutating func write(_ port: PolicyPort) {
        raw("{")
        leadingMember("name", port.name)
        raw("\"port\":")
        int(port.port)
        raw(",\"protocol\":")
        string(port.protocol.rawValue)
        raw("}")
    }

    // MARK: values

    /// A scalar member value.
    enum Scalar {
        case string(String)
        case int(Int)
    }

    /// `"key":value,` when `value` is present. Optional members sort before the required ones
    /// in these objects, so a comma always follows.
    mutating func leadingMember(_ key: StaticString, _ value: Scalar?) {
        guard let value else { return }
        raw("\"")
        raw(key)
        raw("\":")
        switch value {
        case .string(let text): string(text)
        case .int(let number): int(number)
        }
        raw(",")
    }

    mutating func leadingMember(_ key: StaticString, _ value: String?) {
        leadingMember(key, value.map { .string($0) })
    }

    mutating func array<Elements: Sequence>(_ elements: Elements, _ write: (inout FeedJSONWriter, Elements.Element) -> Void) {
        raw("[")
        var first = true
        for element in elements {
            if !first { raw(",") }
            first = false
            write(&self, element)
        }
        raw("]")
    }

    /// A JSON string: `"` and `\` escaped, control characters as `\u00XX`; everything else,
    /// including non-ASCII, as UTF-8 (valid in JSON).
    mutating func string(_ value: String) {
        buffer.writeInteger(UInt8(ascii: "\""))
        let plain = value.utf8.allSatisfy { $0 >= 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
        if plain {
            buffer.writeString(value)
        } else {
            for byte in value.utf8 {
                switch byte {
                case UInt8(ascii: "\""): raw("\\\"")
                case UInt8(ascii: "\\"): raw("\\\\")
                case 0x0A: raw("\\n")
                case 0x0D: raw("\\r")
                case 0x09: raw("\\t")
                case ..<0x20:
                    raw("\\u00")
                    buffer.writeInteger(Self.hexDigits[Int(byte >> 4)])
                    buffer.writeInteger(Self.hexDigits[Int(byte & 0x0F)])
                default:
                    buffer.writeInteger(byte)
                }
            }
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    mutating func int(_ value: Int) {
        buffer.writeString(String(value))
    }

    mutating func unsigned(_ value: UInt64) {
        buffer.writeString(String(value))
    }

    mutating func bool(_ value: Bool) {
        raw(value ? "true" : "false")
    }

    /// Bytes written as they are (punctuation and keys).
    mutating func raw(_ text: StaticString) {
        _ = text.withUTF8Buffer { buffer.writeBytes($0) }
    }
}
