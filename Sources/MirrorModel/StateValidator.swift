/// Semantic checks of a mirror state: names, references, ranges and uniqueness.
///
/// A state is accepted or rejected as a whole; every problem is listed so an operator can
/// fix a file in one pass.
///
/// It runs on every load and every snapshot (100k services on an agent restart), so the
/// common case allocates little: addresses and `ip port` slots are compared as fixed-size
/// values, and an object's label is spelled out only when it has something to report.
struct StateValidator {
    private(set) var issues: [ValidationIssue] = []

    /// Checks `state`, skipping objects the reader already found structurally broken.
    mutating func validate(_ state: MirrorState, skipClusters: Set<Int> = [], skipServices: Set<Int> = [], skipPolicies: Set<Int> = []) {
        if !DNSLabel.isValidDomain(state.clusterDomain) {
            issue("state", "clusterDomain", "\"\(state.clusterDomain)\" is not a valid DNS domain")
        }
        var clustersByName: [String: Cluster] = [:]
        for (index, cluster) in state.clusters.enumerated() {
            let object = Self.label(cluster, index: index)
            if !cluster.name.isEmpty, clustersByName.updateValue(cluster, forKey: cluster.name) != nil {
                issue(object, "name", "duplicate cluster name \"\(cluster.name)\"")
            }
            if !skipClusters.contains(index) { validateCluster(cluster, object: object) }
        }
        // Indexes of positions in `state.services` (keys and slots are recomputed, not stored):
        // at 100k services, dictionaries here were 20+ MiB of peak memory on every load.
        let services = state.services
        var owners = ServiceSlotIndex()          // slot -> the first service using it
        var identities = PositionIndex()         // key -> the last service with it
        owners.reserveCapacity(services.count, in: services)
        identities.reserveCapacity(services.count) { ServiceKeyView(services[$0.position]).hashValue }
        // By index, not `enumerated()`: the label closure then captures no copy of the service
        // (copying a service is six retains and releases, per service, per load).
        for index in services.indices where skipServices.isEmpty || !skipServices.contains(index) {
            let service = services[index]
            let object = { Self.label(services[index], index: index) }
            let key = ServiceKeyView(service)
            if let first = identities.first(hash: key.hashValue, where: { ServiceKeyView(services[$0.position]) == key }) {
                issue(object(), "name", "duplicate service \(service.key), also defined as \(Self.label(services[first.position], index: first.position))")
                identities.move(first, hash: key.hashValue, to: index)
            } else {
                identities.insert(.init(position: index), hash: key.hashValue) { ServiceKeyView(services[$0.position]).hashValue }
            }
            validateService(service, object: object, clusters: clustersByName)
            for (ordinal, slot) in Self.distinctSlots(of: service).enumerated() {
                if let other = owners.owner(of: slot, in: services), other != index {
                    issue(object(), "ips", "\(slot.text) is already used by \(Self.label(services[other], index: other))")
                } else {
                    owners.insert(slot, ordinal: ordinal, position: index, in: services)
                }
            }
        }
        guard !state.policies.isEmpty else { return }
        validatePolicies(state.policies, skip: skipPolicies, services: services) { key in
            let view = ServiceKeyView(key)
            return identities.first(hash: view.hashValue, where: { ServiceKeyView(services[$0.position]) == view }).map { services[$0.position] }
        }
    }

    static func label(_ cluster: Cluster, index: Int) -> String {
        cluster.name.isEmpty ? "clusters[\(index)]" : "clusters[\(index)] \(cluster.name)"
    }

    static func label(_ service: MirroredService, index: Int) -> String {
        "services[\(index)] \(service.key)"
    }

    static func label(_ policy: TrafficPolicy, index: Int) -> String {
        "policies[\(index)] \(policy.key)"
    }

    /// Every `ip port/proto` of a service once, in the order of its ips and ports; addresses
    /// that do not parse are left out (they are reported on their own).
    static func distinctSlots(of service: MirroredService) -> [ServiceSlot] {
        var slots: [ServiceSlot] = []
        slots.reserveCapacity(service.ips.count * service.ports.count)
        for text in service.ips {
            guard let ip = IPAddressValue(text) else { continue }
            for port in service.ports {
                let slot = ServiceSlot(ip: ip, port: port.port, proto: port.protocol)
                if !slots.contains(slot) { slots.append(slot) }
            }
        }
        return slots
    }

    mutating func validateCluster(_ cluster: Cluster, object: String) {
        if !DNSLabel.isValid(cluster.name) {
            issue(object, "name", "\"\(cluster.name)\" is not a DNS label (lowercase letters, digits and '-', at most 63)")
        }
        guard let gateway = cluster.gateway else { return }
        if gateway.addresses.isEmpty {
            issue(object, "gateway.addresses", "a gateway needs at least one address")
        }
        var seen = Set<IPAddressValue>()
        for (i, address) in gateway.addresses.enumerated() {
            guard let value = IPAddressValue(address) else {
                issue(object, "gateway.addresses[\(i)]", "\"\(address)\" is not an IP address")
                continue
            }
            if !seen.insert(value).inserted {
                issue(object, "gateway.addresses[\(i)]", "duplicate gateway address \(address)")
            }
        }
        checkPort(gateway.port, object: { object }, field: "gateway.port")
    }

    mutating func validateService(_ service: MirroredService, object: String, clusters: [String: Cluster]) {
        validateService(service, object: { object }, clusters: clusters)
    }

    /// `object` spells the service's label; it is called only when there is an issue to report.
    mutating func validateService(_ service: MirroredService, object: () -> String, clusters: [String: Cluster]) {
        if !DNSLabel.isValid(service.name) {
            issue(object(), "name", "\"\(service.name)\" is not a DNS label (lowercase letters, digits and '-', at most 63)")
        } else if service.name.utf8.count + 1 + service.mirroredNameSuffix.utf8.count > 63 {
            issue(object(), "name", "the mirrored name \"\(service.mirroredName)\" is longer than 63 characters")
        }
        if !DNSLabel.isValid(service.namespace) {
            issue(object(), "namespace", "\"\(service.namespace)\" is not a DNS label")
        }
        switch (service.mode, service.cluster) {
        case (.federated, .some):
            issue(object(), "cluster", "a federated service has no cluster of its own; name the cluster on each endpoint")
        case (.gateway, nil), (.remoteDiscovery, nil):
            issue(object(), "cluster", "required for mode \(service.mode.rawValue)")
        case (_, .some(let name)):
            if let cluster = clusters[name] {
                if service.mode == .gateway, cluster.gateway == nil {
                    issue(object(), "cluster", "gateway-mode service of cluster \"\(name)\", which has no gateway")
                }
            } else {
                issue(object(), "cluster", "unknown cluster \"\(name)\"")
            }
        default:
            break
        }
        if service.ips.isEmpty { issue(object(), "ips", "at least one ClusterIP is required") }
        var ips = DuplicateFinder<IPAddressValue>(expected: service.ips.count)
        for (i, ip) in service.ips.enumerated() {
            guard let value = IPAddressValue(ip) else {
                issue(object(), "ips[\(i)]", "\"\(ip)\" is not an IP address")
                continue
            }
            if !ips.insert(value) { issue(object(), "ips[\(i)]", "duplicate ClusterIP \(ip)") }
        }
        var ports = DuplicateFinder<PortKey>(expected: service.ports.count)
        var portNames = DuplicateFinder<String>(expected: service.ports.count)
        for (i, port) in service.ports.enumerated() {
            let field = { "ports[\(i)]" }
            checkPort(port.port, object: object, field: "\(field()).port")
            checkPort(port.targetPort, object: object, field: "\(field()).targetPort")
            if let gatewayPort = port.gatewayPort { checkPort(gatewayPort, object: object, field: "\(field()).gatewayPort") }
            if let name = port.name {
                if !DNSLabel.isValidPortName(name) {
                    issue(object(), "\(field()).name", "\"\(name)\" is not a valid port name (at most 15 lowercase letters, digits and '-')")
                } else if !portNames.insert(name) {
                    issue(object(), "\(field()).name", "duplicate port name \"\(name)\"")
                }
            }
            if !ports.insert(PortKey(port: port.port, proto: port.protocol)) {
                issue(object(), "\(field()).port", "duplicate port \(port.port)/\(port.protocol.rawValue)")
            }
        }
        validateEndpoints(service, object: object, clusters: clusters)
    }

    private mutating func validateEndpoints(_ service: MirroredService, object: () -> String, clusters: [String: Cluster]) {
        if service.mode == .gateway, !service.endpoints.isEmpty {
            issue(object(), "endpoints", "a gateway-mode service has no endpoints (traffic goes to the gateway); use mode remote-discovery for pod IPs")
            return
        }
        var seen = DuplicateFinder<IPAddressValue>(expected: service.endpoints.count)
        for (i, endpoint) in service.endpoints.enumerated() {
            let field = { "endpoints[\(i)]" }
            if let value = IPAddressValue(endpoint.ip) {
                if !seen.insert(value) { issue(object(), "\(field()).ip", "duplicate endpoint \(endpoint.ip)") }
            } else {
                issue(object(), "\(field()).ip", "\"\(endpoint.ip)\" is not an IP address")
            }
            if let hostname = endpoint.hostname, !DNSLabel.isValid(hostname) {
                issue(object(), "\(field()).hostname", "\"\(hostname)\" is not a DNS label")
            }
            switch (service.mode, endpoint.cluster) {
            case (.federated, nil):
                issue(object(), "\(field()).cluster", "required on every endpoint of a federated service")
            case (_, .some(let name)):
                if clusters[name] == nil {
                    issue(object(), "\(field()).cluster", "unknown cluster \"\(name)\"")
                } else if service.mode != .federated, name != service.cluster {
                    issue(object(), "\(field()).cluster", "endpoint of cluster \"\(name)\" in a service of cluster \"\(service.cluster ?? "")\"")
                }
            default:
                break
            }
        }
    }

    // MARK: traffic policies

    /// The policies of a whole state: each on its own, their keys and ClusterIPs unique, and
    /// no ClusterIP of theirs a mirrored service's (a policy is for a local service).
    private mutating func validatePolicies(_ policies: [TrafficPolicy], skip: Set<Int>, services: [MirroredService],
                                           lookup: (ServiceKey) -> MirroredService?) {
        var keys: [PolicyKey: Int] = [:]
        var addresses: [IPAddressValue: Int] = [:]  // ClusterIP -> the first policy with it
        for (index, policy) in policies.enumerated() where !skip.contains(index) {
            let object = Self.label(policy, index: index)
            if let first = keys[policy.key] {
                issue(object, "name", "duplicate policy \(policy.key), also defined as \(Self.label(policies[first], index: first))")
            } else {
                keys[policy.key] = index
            }
            validatePolicy(policy, object: { object }, service: lookup)
            for (i, ip) in policy.ips.enumerated() {
                guard let value = IPAddressValue(ip) else { continue }
                if let other = addresses[value] {
                    if other != index { issue(object, "ips[\(i)]", "\(ip) is already used by \(Self.label(policies[other], index: other))") }
                } else {
                    addresses[value] = index
                }
            }
        }
        guard !addresses.isEmpty else { return }
        var reported = Set<IPAddressValue>()
        for (position, service) in services.enumerated() {
            for ip in service.ips {
                guard let value = IPAddressValue(ip), let owner = addresses[value], reported.insert(value).inserted else { continue }
                let policy = policies[owner]
                guard let i = policy.ips.firstIndex(where: { IPAddressValue($0) == value }) else { continue }
                issue(Self.label(policy, index: owner), "ips[\(i)]", Self.mirroredAddressMessage(policy.ips[i], service: Self.label(service, index: position)))
            }
        }
    }

    static func mirroredAddressMessage(_ ip: String, service: String) -> String {
        "\(ip) is the ClusterIP of \(service); a policy is for a local service"
    }

    /// One policy on its own: names, addresses, ports, weights, and its mirrors, which must
    /// exist in its namespace (`service` looks them up) and carry every port of the policy.
    /// Whether its ClusterIPs are free is the caller's check (the state's or the store's).
    mutating func validatePolicy(_ policy: TrafficPolicy, object: () -> String, service lookup: (ServiceKey) -> MirroredService?) {
        if !DNSLabel.isValid(policy.name) {
            issue(object(), "name", "\"\(policy.name)\" is not a DNS label (lowercase letters, digits and '-', at most 63)")
        }
        if !DNSLabel.isValid(policy.namespace) {
            issue(object(), "namespace", "\"\(policy.namespace)\" is not a DNS label")
        }
        if policy.ips.isEmpty { issue(object(), "ips", "at least one ClusterIP (of the local service) is required") }
        var ips = DuplicateFinder<IPAddressValue>(expected: policy.ips.count)
        for (i, ip) in policy.ips.enumerated() {
            guard let value = IPAddressValue(ip) else {
                issue(object(), "ips[\(i)]", "\"\(ip)\" is not an IP address")
                continue
            }
            if !ips.insert(value) { issue(object(), "ips[\(i)]", "duplicate ClusterIP \(ip)") }
        }
        if policy.ports.isEmpty { issue(object(), "ports", "at least one port is required") }
        var ports = DuplicateFinder<PortKey>(expected: policy.ports.count)
        var portNames = DuplicateFinder<String>(expected: policy.ports.count)
        for (i, port) in policy.ports.enumerated() {
            checkPort(port.port, object: object, field: "ports[\(i)].port")
            if let name = port.name {
                if !DNSLabel.isValidPortName(name) {
                    issue(object(), "ports[\(i)].name", "\"\(name)\" is not a valid port name (at most 15 lowercase letters, digits and '-')")
                } else if !portNames.insert(name) {
                    issue(object(), "ports[\(i)].name", "duplicate port name \"\(name)\"")
                }
            }
            if !ports.insert(PortKey(port: port.port, proto: port.protocol)) {
                issue(object(), "ports[\(i)].port", "duplicate port \(port.port)/\(port.protocol.rawValue)")
            }
        }
        if policy.backends.isEmpty {
            issue(object(), "backends", "at least one backend is required (the local service, {local: true, weight: W}, or a mirror)")
        }
        var locals = 0
        var mirrors = DuplicateFinder<String>(expected: policy.backends.count)
        var weightsInRange = true
        for (i, backend) in policy.backends.enumerated() {
            if !PolicyBackend.weights.contains(backend.weight) {
                weightsInRange = false
                issue(object(), "backends[\(i)].weight", "must be between 0 and 1000, got \(backend.weight)")
            }
            if let mirror = backend.mirror {
                if !mirrors.insert(mirror) {
                    issue(object(), "backends[\(i)].mirror", "duplicate backend \(mirror)")
                } else {
                    checkMirror(mirror, of: policy, object: object, field: "backends[\(i)].mirror", service: lookup)
                }
            } else {
                locals += 1
                if locals > 1 { issue(object(), "backends[\(i)].local", "only one backend can be the local service") }
            }
        }
        if !policy.backends.isEmpty, weightsInRange, policy.totalWeight == 0 {
            issue(object(), "backends", "the weights add up to 0; at least one must be positive")
        }
        var failover = DuplicateFinder<String>(expected: policy.failover.count)
        for (i, mirror) in policy.failover.enumerated() {
            if !failover.insert(mirror) {
                issue(object(), "failover[\(i)]", "duplicate failover mirror \(mirror)")
            } else {
                checkMirror(mirror, of: policy, object: object, field: "failover[\(i)]", service: lookup)
            }
        }
    }

    /// `mirror` is a mirrored service in the policy's namespace with every port of the policy.
    private mutating func checkMirror(_ mirror: String, of policy: TrafficPolicy, object: () -> String, field: String,
                                      service lookup: (ServiceKey) -> MirroredService?) {
        guard let service = lookup(ServiceKey(namespace: policy.namespace, mirroredName: mirror)) else {
            issue(object(), field, "\(mirror) is not a mirrored service in \(policy.namespace)")
            return
        }
        let missing = Self.portsMissing(from: service, for: policy)
        if !missing.isEmpty {
            issue(object(), field, "\(mirror) has no port \(missing.joined(separator: ", ")) (a mirror must carry every port of the policy)")
        }
    }

    /// The policy's ports (`80/TCP`) that `service` does not carry; out-of-range numbers are
    /// left out (they are reported on their own).
    static func portsMissing(from service: MirroredService, for policy: TrafficPolicy) -> [String] {
        policy.ports.filter { wanted in
            (1...65535).contains(wanted.port) && !service.ports.contains { $0.port == wanted.port && $0.protocol == wanted.protocol }
        }
            .map { "\($0.port)/\($0.protocol.rawValue)" }
    }

    private mutating func checkPort(_ port: Int, object: () -> String, field: @autoclosure () -> String) {
        if !(1...65535).contains(port) {
            issue(object(), field(), "must be between 1 and 65535, got \(port)")
        }
    }

    private mutating func issue(_ object: String, _ field: String, _ message: String) {
        issues.append(ValidationIssue(object: object, field: field, message: message))
    }

    private struct PortKey: Hashable {
        var port: Int
        var proto: L4Protocol
    }
}

/// Finds repeated values in a list without allocating for the usual lists of one or two.
private struct DuplicateFinder<Value: Hashable> {
    private var first: Value?
    private var rest: Set<Value>?

    init(expected: Int) {
        if expected > 1 { rest = Set(minimumCapacity: expected) }
    }

    /// Records `value`; false when it was recorded before.
    mutating func insert(_ value: Value) -> Bool {
        if let result = rest?.insert(value) { return result.inserted }
        if first == value { return false }
        first = value
        return true
    }
}
