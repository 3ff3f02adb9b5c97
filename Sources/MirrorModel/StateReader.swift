/// Reads a ``DocumentValue`` tree into a ``MirrorState``, collecting every structural problem
/// (unknown field, wrong type, missing field) instead of stopping at the first.
///
/// Objects with structural problems are remembered so that semantic validation skips them:
/// a port that failed to parse must not also be reported as "out of range".
struct StateReader: DocumentReading {
    var issues: [ValidationIssue] = []
    /// Indexes of services whose identity or mode could not be read: semantic checks of
    /// them would only produce noise.
    private(set) var brokenServices: Set<Int> = []
    /// Indexes of clusters that are not maps or have no readable name.
    private(set) var brokenClusters: Set<Int> = []
    /// Indexes of policies whose identity could not be read.
    private(set) var brokenPolicies: Set<Int> = []

    mutating func read(_ document: DocumentValue) -> MirrorState {
        var state = MirrorState()
        guard let top = map(document, object: "state", field: "") else { return state }
        var fields = DocumentFields(top)
        if let domain = fields.take("clusterDomain") {
            state.clusterDomain = string(domain, object: "state", field: "clusterDomain") ?? state.clusterDomain
        }
        if let clusters = fields.take("clusters"), let items = list(clusters, object: "state", field: "clusters") {
            for (index, item) in items.enumerated() {
                state.clusters.append(readCluster(item, index: index))
            }
        }
        if let services = fields.take("services"), let items = list(services, object: "state", field: "services") {
            for (index, item) in items.enumerated() {
                state.services.append(readService(item, index: index))
            }
        }
        if let policies = fields.take("policies"), let items = list(policies, object: "state", field: "policies") {
            for (index, item) in items.enumerated() {
                state.policies.append(readPolicy(item, index: index))
            }
        }
        reportUnknown(fields, object: "state", prefix: "")
        return state
    }

    // MARK: objects

    private mutating func readCluster(_ value: DocumentValue, index: Int) -> Cluster {
        var cluster = Cluster(name: "")
        let before = issues.count
        var object = "clusters[\(index)]"
        guard let body = map(value, object: object, field: "") else {
            brokenClusters.insert(index)
            return cluster
        }
        var fields = DocumentFields(body)
        if let name = fields.take("name") { cluster.name = string(name, object: object, field: "name") ?? "" }
        if !cluster.name.isEmpty { object += " \(cluster.name)" }
        if cluster.name.isEmpty, issues.count == before { missing(object: object, field: "name") }
        if let masquerade = fields.take("masquerade") {
            cluster.masquerade = bool(masquerade, object: object, field: "masquerade") ?? false
        }
        if let gateway = fields.take("gateway") {
            cluster.gateway = readGateway(gateway, object: object)
        }
        reportUnknown(fields, object: object, prefix: "")
        if cluster.name.isEmpty { brokenClusters.insert(index) }
        return cluster
    }

    private mutating func readGateway(_ value: DocumentValue, object: String) -> Gateway? {
        if case .null = value { return nil }
        guard let body = map(value, object: object, field: "gateway") else { return nil }
        var gateway = Gateway(addresses: [])
        var fields = DocumentFields(body)
        if let addresses = fields.take("addresses") {
            gateway.addresses = strings(addresses, object: object, field: "gateway.addresses")
        } else {
            missing(object: object, field: "gateway.addresses")
        }
        if let port = fields.take("port") { gateway.port = int(port, object: object, field: "gateway.port") ?? Gateway.defaultPort }
        if let identity = fields.take("identity") { gateway.identity = optionalString(identity, object: object, field: "gateway.identity") }
        if let alive = fields.take("alive") { gateway.alive = bool(alive, object: object, field: "gateway.alive") ?? true }
        reportUnknown(fields, object: object, prefix: "gateway.")
        return gateway
    }

    private mutating func readService(_ value: DocumentValue, index: Int) -> MirroredService {
        var service = MirroredService(name: "", namespace: "", mode: .gateway, ips: [], ports: [])
        let before = issues.count
        var object = "services[\(index)]"
        guard let body = map(value, object: object, field: "") else {
            brokenServices.insert(index)
            return service
        }
        var fields = DocumentFields(body)
        // Read the identity first so every later message names the service.
        let name = fields.take("name").flatMap { string($0, object: object, field: "name") }
        let namespace = fields.take("namespace").flatMap { string($0, object: object, field: "namespace") }
        let cluster = fields.take("cluster").flatMap { optionalString($0, object: object, field: "cluster") }
        let modeText = fields.take("mode").flatMap { string($0, object: object, field: "mode") }
        service.name = name ?? ""
        service.namespace = namespace ?? ""
        service.cluster = cluster
        if let modeText, let mode = MirrorMode(rawValue: modeText) { service.mode = mode }
        if let name, let namespace {
            object += " \(namespace)/\(service.mode == .federated ? "\(name)-federated" : "\(name)-\(cluster ?? "?")")"
        }
        if name == nil, issues.count == before { missing(object: object, field: "name") }
        if namespace == nil, issues.count == before { missing(object: object, field: "namespace") }
        if let modeText {
            if MirrorMode(rawValue: modeText) == nil {
                issue(object, "mode", "unknown mode \"\(modeText)\"; expected one of \(MirrorMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        } else {
            missing(object: object, field: "mode", hint: "one of \(MirrorMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let ips = fields.take("ips") {
            service.ips = strings(ips, object: object, field: "ips")
        } else {
            missing(object: object, field: "ips", hint: "the mirrored ClusterIPs")
        }
        if let ports = fields.take("ports"), let items = list(ports, object: object, field: "ports") {
            service.ports = items.enumerated().compactMap { readPort($1, object: object, field: "ports[\($0)]") }
        }
        if let endpoints = fields.take("endpoints"), let items = list(endpoints, object: object, field: "endpoints") {
            service.endpoints = items.enumerated().compactMap { readEndpoint($1, object: object, field: "endpoints[\($0)]") }
        }
        reportUnknown(fields, object: object, prefix: "")
        if name == nil || namespace == nil || modeText.flatMap(MirrorMode.init(rawValue:)) == nil {
            brokenServices.insert(index)
        }
        return service
    }

    private mutating func readPort(_ value: DocumentValue, object: String, field: String) -> ServicePort? {
        guard let body = map(value, object: object, field: field) else { return nil }
        var fields = DocumentFields(body)
        var port = ServicePort(port: 0)
        if let name = fields.take("name") { port.name = optionalString(name, object: object, field: "\(field).name") }
        if let proto = fields.take("protocol"), let parsed = l4Protocol(proto, object: object, field: "\(field).protocol") {
            port.protocol = parsed
        }
        if let number = fields.take("port") {
            port.port = int(number, object: object, field: "\(field).port") ?? 0
        } else {
            missing(object: object, field: "\(field).port")
        }
        port.targetPort = fields.take("targetPort").flatMap { int($0, object: object, field: "\(field).targetPort") } ?? port.port
        if let gatewayPort = fields.take("gatewayPort") { port.gatewayPort = int(gatewayPort, object: object, field: "\(field).gatewayPort") }
        reportUnknown(fields, object: object, prefix: "\(field).")
        return port
    }

    private mutating func readEndpoint(_ value: DocumentValue, object: String, field: String) -> Endpoint? {
        guard let body = map(value, object: object, field: field) else { return nil }
        var fields = DocumentFields(body)
        var endpoint = Endpoint(ip: "")
        if let ip = fields.take("ip") {
            endpoint.ip = string(ip, object: object, field: "\(field).ip") ?? ""
        } else {
            missing(object: object, field: "\(field).ip")
        }
        if let ready = fields.take("ready") { endpoint.ready = bool(ready, object: object, field: "\(field).ready") ?? true }
        if let hostname = fields.take("hostname") { endpoint.hostname = optionalString(hostname, object: object, field: "\(field).hostname") }
        if let cluster = fields.take("cluster") { endpoint.cluster = optionalString(cluster, object: object, field: "\(field).cluster") }
        reportUnknown(fields, object: object, prefix: "\(field).")
        return endpoint
    }

    // MARK: traffic policies

    private mutating func readPolicy(_ value: DocumentValue, index: Int) -> TrafficPolicy {
        var policy = TrafficPolicy(name: "", namespace: "", ips: [], ports: [], backends: [])
        let before = issues.count
        var object = "policies[\(index)]"
        guard let body = map(value, object: object, field: "") else {
            brokenPolicies.insert(index)
            return policy
        }
        var fields = DocumentFields(body)
        let name = fields.take("name").flatMap { string($0, object: object, field: "name") }
        let namespace = fields.take("namespace").flatMap { string($0, object: object, field: "namespace") }
        policy.name = name ?? ""
        policy.namespace = namespace ?? ""
        if let name, let namespace { object += " \(namespace)/\(name)" }
        if name == nil, issues.count == before { missing(object: object, field: "name", hint: "the local Service's name") }
        if namespace == nil, issues.count == before { missing(object: object, field: "namespace") }
        if let ips = fields.take("ips") {
            policy.ips = strings(ips, object: object, field: "ips")
        } else {
            missing(object: object, field: "ips", hint: "the local Service's ClusterIPs")
        }
        if let ports = fields.take("ports") {
            if let items = list(ports, object: object, field: "ports") {
                policy.ports = items.enumerated().compactMap { readPolicyPort($1, object: object, field: "ports[\($0)]") }
            }
        } else {
            missing(object: object, field: "ports")
        }
        if let backends = fields.take("backends") {
            if let items = list(backends, object: object, field: "backends") {
                policy.backends = items.enumerated().map { readBackend($1, object: object, field: "backends[\($0)]") }
            }
        } else {
            missing(object: object, field: "backends", hint: "e.g. [{local: true, weight: 900}, {mirror: \(name ?? "bar")-paris, weight: 100}]")
        }
        if let failover = fields.take("failover") { policy.failover = strings(failover, object: object, field: "failover") }
        if let ready = fields.take("localReady") { policy.localReady = bool(ready, object: object, field: "localReady") ?? true }
        reportUnknown(fields, object: object, prefix: "")
        if name == nil || namespace == nil { brokenPolicies.insert(index) }
        return policy
    }

    private mutating func readPolicyPort(_ value: DocumentValue, object: String, field: String) -> PolicyPort? {
        guard let body = map(value, object: object, field: field) else { return nil }
        var fields = DocumentFields(body)
        var port = PolicyPort(port: 0)
        if let name = fields.take("name") { port.name = optionalString(name, object: object, field: "\(field).name") }
        if let proto = fields.take("protocol"), let parsed = l4Protocol(proto, object: object, field: "\(field).protocol") {
            port.protocol = parsed
        }
        if let number = fields.take("port") {
            port.port = int(number, object: object, field: "\(field).port") ?? 0
        } else {
            missing(object: object, field: "\(field).port")
        }
        reportUnknown(fields, object: object, prefix: "\(field).")
        return port
    }

    /// A backend that is not a map, or does not say where its share goes, reads as a
    /// placeholder mirror (never a second local backend), so the later backends keep their
    /// indexes and the validator's words about this one are dropped as noise.
    private mutating func readBackend(_ value: DocumentValue, object: String, field: String) -> PolicyBackend {
        guard let body = map(value, object: object, field: field) else { return PolicyBackend(mirror: "", weight: 0) }
        var fields = DocumentFields(body)
        let before = issues.count
        var local: Bool?
        if let value = fields.take("local") {
            if case .null = value {} else { local = bool(value, object: object, field: "\(field).local") }
        }
        let mirror = fields.take("mirror").flatMap { optionalString($0, object: object, field: "\(field).mirror") }
        var weight = 0
        if let number = fields.take("weight") {
            weight = int(number, object: object, field: "\(field).weight") ?? 0
        } else {
            missing(object: object, field: "\(field).weight", hint: "0 to 1000")
        }
        reportUnknown(fields, object: object, prefix: "\(field).")
        guard PolicyBackend.isWellFormed(local: local, mirror: mirror) else {
            if issues.count == before { issue(object, field, PolicyBackend.shapeMessage) }
            return PolicyBackend(mirror: mirror ?? "", weight: weight)
        }
        return PolicyBackend(mirror: mirror, weight: weight)
    }
}
