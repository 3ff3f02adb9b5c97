/// Decodes mirror-state JSON straight into model values, one pass over the bytes: whole
/// states (state files, the agent's persisted feed state, feed snapshots), single clusters,
/// services and traffic policies (feed upsert events), and exports documents (`ExportsDocument+JSON.swift`). The one set of model decoders in the package; every
/// fast JSON path goes through it, on ``JSONCursor``.
///
/// This is the fast path for big states (a restart with 100k services must be ready in well
/// under a second). It accepts exactly the documents the strict `Codable` form accepts with
/// the same result (defaults filled, `null` meaning absent, unknown fields refused), or a
/// subset of them: whatever it does not accept it refuses without explanation
/// (``JSONCursor/Mismatch``), and the caller falls back to a reader that explains
/// (``MirrorState/init(parsing:)``'s readers, or `JSONDecoder` for feed lines).
///
/// Repeated values are stored once when interning is on: strings such as namespaces and
/// cluster names, and whole port lists (most services of a cluster expose the same ports),
/// share one copy-on-write buffer across services.
package struct StateJSONDecoder {
    /// The reader, for callers that decode an envelope around the model objects (feed
    /// events, the persisted feed state).
    package var cursor: JSONCursor
    private let interning: Bool
    private var strings = Interner<String>()
    private var portLists = Interner<[ServicePort]>()

    /// Decodes a whole state document; nil when it is not one this decoder accepts.
    package static func decode(_ bytes: UnsafeBufferPointer<UInt8>) -> MirrorState? {
        var decoder = StateJSONDecoder(bytes)
        guard let state = try? decoder.state(), (try? decoder.cursor.finish()) != nil else { return nil }
        return state
    }

    /// A decoder over `bytes`, which must outlive it. Interning pays for many objects (a
    /// state); for a single cluster or service it is only overhead.
    package init(_ bytes: UnsafeBufferPointer<UInt8>, interning: Bool = true) {
        self.cursor = JSONCursor(bytes)
        self.interning = interning
    }

    /// Reads one state object (not what follows it).
    package mutating func state() throws -> MirrorState {
        var state = MirrorState()
        var seen = FieldSet()
        var object = try cursor.openObject()
        while let key = try cursor.nextKey(&object) {
            if key.spells("clusterDomain") {
                try seen.mark(0)
                state.clusterDomain = try optionalString() ?? MirrorState.defaultClusterDomain
            } else if key.spells("clusters") {
                try seen.mark(1)
                state.clusters = try optionalList { try $0.cluster() } ?? []
            } else if key.spells("services") {
                try seen.mark(2)
                state.services = try optionalList { try $0.service() } ?? []
            } else if key.spells("policies") {
                try seen.mark(3)
                state.policies = try optionalList { try $0.policy() } ?? []
            } else {
                throw JSONCursor.Mismatch()
            }
        }
        return state
    }

    package mutating func cluster() throws -> Cluster {
        var name: String?
        var cluster = Cluster(name: "")
        var seen = FieldSet()
        var object = try cursor.openObject()
        while let key = try cursor.nextKey(&object) {
            if key.spells("name") {
                try seen.mark(0)
                name = try interned(cursor.string())
            } else if key.spells("gateway") {
                try seen.mark(1)
                cluster.gateway = cursor.skipNull() ? nil : try gateway()
            } else if key.spells("masquerade") {
                try seen.mark(2)
                cluster.masquerade = cursor.skipNull() ? false : try cursor.bool()
            } else {
                throw JSONCursor.Mismatch()
            }
        }
        guard let name else { throw JSONCursor.Mismatch() }
        cluster.name = name
        return cluster
    }

    private mutating func gateway() throws -> Gateway {
        var addresses: [String]?
        var gateway = Gateway(addresses: [])
        var seen = FieldSet()
        var object = try cursor.openObject()
        while let key = try cursor.nextKey(&object) {
            if key.spells("addresses") {
                try seen.mark(0)
                addresses = try list { try $0.cursor.string() }
            } else if key.spells("port") {
                try seen.mark(1)
                gateway.port = cursor.skipNull() ? Gateway.defaultPort : try cursor.int()
            } else if key.spells("identity") {
                try seen.mark(2)
                gateway.identity = try optionalString()
            } else if key.spells("alive") {
                try seen.mark(3)
                gateway.alive = cursor.skipNull() ? true : try cursor.bool()
            } else {
                throw JSONCursor.Mismatch()
            }
        }
        guard let addresses else { throw JSONCursor.Mismatch() }
        gateway.addresses = addresses
        return gateway
    }

    package mutating func service() throws -> MirroredService {
        var name: String?, namespace: String?, mode: MirrorMode?, ips: [String]?
        var service = MirroredService(name: "", namespace: "", mode: .gateway, ips: [], ports: [])
        var seen = FieldSet()
        var object = try cursor.openObject()
        while let key = try cursor.nextKey(&object) {
            if key.spells("name") {
                try seen.mark(0)
                name = try cursor.string()
            } else if key.spells("namespace") {
                try seen.mark(1)
                namespace = try interned(cursor.string())
            } else if key.spells("cluster") {
                try seen.mark(2)
                service.cluster = try optionalString().map { interned($0) }
            } else if key.spells("mode") {
                try seen.mark(3)
                guard let parsed = MirrorMode(rawValue: try cursor.string()) else { throw JSONCursor.Mismatch() }
                mode = parsed
            } else if key.spells("ips") {
                try seen.mark(4)
                ips = try list { try $0.cursor.string() }
            } else if key.spells("ports") {
                try seen.mark(5)
                let ports = try optionalList { try $0.port() } ?? []
                service.ports = interning ? portLists.intern(ports) : ports
            } else if key.spells("endpoints") {
                try seen.mark(6)
                service.endpoints = try optionalList { try $0.endpoint() } ?? []
            } else {
                throw JSONCursor.Mismatch()
            }
        }
        guard let name, let namespace, let mode, let ips else { throw JSONCursor.Mismatch() }
        service.name = name
        service.namespace = namespace
        service.mode = mode
        service.ips = ips
        return service
    }

    private mutating func port() throws -> ServicePort {
        var number: Int?, targetPort: Int?
        var port = ServicePort(port: 0)
        var seen = FieldSet()
        var object = try cursor.openObject()
        while let key = try cursor.nextKey(&object) {
            if key.spells("name") {
                try seen.mark(0)
                port.name = try optionalString().map { interned($0) }
            } else if key.spells("protocol") {
                try seen.mark(1)
                if !cursor.skipNull() {
                    guard let parsed = L4Protocol(rawValue: try cursor.string()) else { throw JSONCursor.Mismatch() }
                    port.protocol = parsed
                }
            } else if key.spells("port") {
                try seen.mark(2)
                number = try cursor.int()
            } else if key.spells("targetPort") {
                try seen.mark(3)
                targetPort = cursor.skipNull() ? nil : try cursor.int()
            } else if key.spells("gatewayPort") {
                try seen.mark(4)
                port.gatewayPort = cursor.skipNull() ? nil : try cursor.int()
            } else {
                throw JSONCursor.Mismatch()
            }
        }
        guard let number else { throw JSONCursor.Mismatch() }
        port.port = number
        port.targetPort = targetPort ?? number
        return port
    }

    private mutating func endpoint() throws -> Endpoint {
        var ip: String?
        var endpoint = Endpoint(ip: "")
        var seen = FieldSet()
        var object = try cursor.openObject()
        while let key = try cursor.nextKey(&object) {
            if key.spells("ip") {
                try seen.mark(0)
                ip = try cursor.string()
            } else if key.spells("ready") {
                try seen.mark(1)
                endpoint.ready = cursor.skipNull() ? true : try cursor.bool()
            } else if key.spells("hostname") {
                try seen.mark(2)
                endpoint.hostname = try optionalString()
            } else if key.spells("cluster") {
                try seen.mark(3)
                endpoint.cluster = try optionalString().map { interned($0) }
            } else {
                throw JSONCursor.Mismatch()
            }
        }
        guard let ip else { throw JSONCursor.Mismatch() }
        endpoint.ip = ip
        return endpoint
    }

    package mutating func policy() throws -> TrafficPolicy {
        var name: String?, namespace: String?, ips: [String]?, ports: [PolicyPort]?, backends: [PolicyBackend]?
        var policy = TrafficPolicy(name: "", namespace: "", ips: [], ports: [], backends: [])
        var seen = FieldSet()
        var object = try cursor.openObject()
        while let key = try cursor.nextKey(&object) {
            if key.spells("name") {
                try seen.mark(0)
                name = try cursor.string()
            } else if key.spells("namespace") {
                try seen.mark(1)
                namespace = try interned(cursor.string())
            } else if key.spells("ips") {
                try seen.mark(2)
                ips = try list { try $0.cursor.string() }
            } else if key.spells("ports") {
                try seen.mark(3)
                ports = try list { try $0.policyPort() }
            } else if key.spells("backends") {
                try seen.mark(4)
                backends = try list { try $0.backend() }
            } else if key.spells("failover") {
                try seen.mark(5)
                policy.failover = try optionalList { try $0.cursor.string() } ?? []
            } else if key.spells("localReady") {
                try seen.mark(6)
                policy.localReady = cursor.skipNull() ? true : try cursor.bool()
            } else {
                throw JSONCursor.Mismatch()
            }
        }
        guard let name, let namespace, let ips, let ports, let backends else { throw JSONCursor.Mismatch() }
        policy.name = name
        policy.namespace = namespace
        policy.ips = ips
        policy.ports = ports
        policy.backends = backends
        return policy
    }

    private mutating func policyPort() throws -> PolicyPort {
        var number: Int?
        var port = PolicyPort(port: 0)
        var seen = FieldSet()
        var object = try cursor.openObject()
        while let key = try cursor.nextKey(&object) {
            if key.spells("name") {
                try seen.mark(0)
                port.name = try optionalString()
            } else if key.spells("protocol") {
                try seen.mark(1)
                if !cursor.skipNull() {
                    guard let parsed = L4Protocol(rawValue: try cursor.string()) else { throw JSONCursor.Mismatch() }
                    port.protocol = parsed
                }
            } else if key.spells("port") {
                try seen.mark(2)
                number = try cursor.int()
            } else {
                throw JSONCursor.Mismatch()
            }
        }
        guard let number else { throw JSONCursor.Mismatch() }
        port.port = number
        return port
    }

    private mutating func backend() throws -> PolicyBackend {
        var local: Bool?, mirror: String?, weight: Int?
        var seen = FieldSet()
        var object = try cursor.openObject()
        while let key = try cursor.nextKey(&object) {
            if key.spells("local") {
                try seen.mark(0)
                local = cursor.skipNull() ? nil : try cursor.bool()
            } else if key.spells("mirror") {
                try seen.mark(1)
                mirror = try optionalString()
            } else if key.spells("weight") {
                try seen.mark(2)
                weight = try cursor.int()
            } else {
                throw JSONCursor.Mismatch()
            }
        }
        guard let weight, PolicyBackend.isWellFormed(local: local, mirror: mirror) else { throw JSONCursor.Mismatch() }
        return PolicyBackend(mirror: mirror, weight: weight)
    }

    // MARK: helpers

    /// Reads an object whose possible fields are `names` (for envelopes around the model:
    /// feed events, the persisted feed state), calling `read` with each field's number in
    /// `names`; `read` must consume the value. Unknown and repeated fields are refused.
    package mutating func object(fields names: [StaticString], _ read: (inout Self, Int) throws -> Void) throws {
        var seen = FieldSet()
        var object = try cursor.openObject()
        while let key = try cursor.nextKey(&object) {
            guard let field = names.firstIndex(where: { key.spells($0) }) else { throw JSONCursor.Mismatch() }
            try seen.mark(field)
            try read(&self, field)
        }
    }

    package mutating func optionalString() throws -> String? {
        cursor.skipNull() ? nil : try cursor.string()
    }

    /// A required list (`null` is refused, as `Codable` refuses it).
    mutating func list<T>(_ element: (inout Self) throws -> T) throws -> [T] {
        var items: [T] = []
        var array = try cursor.openArray()
        while try cursor.nextElement(&array) {
            items.append(try element(&self))
        }
        return items
    }

    /// A list that may be absent or `null`.
    mutating func optionalList<T>(_ element: (inout Self) throws -> T) throws -> [T]? {
        cursor.skipNull() ? nil : try list(element)
    }

    /// Up to 15 UTF-8 bytes a string lives inside its 16-byte value: only longer ones have a
    /// heap buffer worth sharing.
    mutating func interned(_ text: String) -> String {
        interning && text.utf8.count > 15 ? strings.intern(text) : text
    }
}

/// Fields already read in one object: a repeated key is refused (`Codable` and the explaining
/// readers disagree on which copy wins).
struct FieldSet {
    private var bits: UInt32 = 0

    /// Records field number `field` (0–31); throws when it was already read.
    mutating func mark(_ field: Int) throws {
        let bit = UInt32(1) << field
        guard bits & bit == 0 else { throw JSONCursor.Mismatch() }
        bits |= bit
    }
}

/// Hands out one shared instance per distinct value, so repeated strings and arrays keep a
/// single heap buffer.
struct Interner<Value: Hashable> {
    private var table: Set<Value> = []

    /// Values past this many distinct ones are returned as they are: interning only pays for
    /// values that repeat, and the table must not grow with a state of unique names.
    static var capacity: Int { 4096 }

    mutating func intern(_ value: Value) -> Value {
        if let existing = table.firstIndex(of: value) { return table[existing] }
        if table.count < Self.capacity { table.insert(value) }
        return value
    }
}
