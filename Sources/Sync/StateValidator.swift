/// Semantic checks of a mirror state: names, references, ranges and uniqueness.
///
/// A state is accepted or rejected as a whole; every problem is listed so an operator can
/// fix a file in one pass.
struct StateValidator {
    private(set) var issues: [ValidationIssue] = []

    /// Checks `state`, skipping objects the reader already found structurally broken.
    mutating func validate(_ state: MirrorState, skipClusters: Set<Int> = [], skipServices: Set<Int> = []) {
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
        var owners: [String: String] = [:]      // "ip proto port" -> object label
        var identities: [ServiceKey: String] = [:]
        for (index, service) in state.services.enumerated() where !skipServices.contains(index) {
            let object = Self.label(service, index: index)
            if let first = identities.updateValue(object, forKey: service.key) {
                issue(object, "name", "duplicate service \(service.key), also defined as \(first)")
            }
            validateService(service, object: object, clusters: clustersByName)
            for ip in Set(service.ips.compactMap { IPAddressText.canonical($0)?.text }) {
                for port in Set(service.ports.map { "\($0.port)/\($0.protocol.rawValue)" }) {
                    let slot = "\(ip):\(port)"
                    if let other = owners[slot], other != object {
                        issue(object, "ips", "\(slot) is already used by \(other)")
                    } else {
                        owners[slot] = object
                    }
                }
            }
        }
    }

    static func label(_ cluster: Cluster, index: Int) -> String {
        cluster.name.isEmpty ? "clusters[\(index)]" : "clusters[\(index)] \(cluster.name)"
    }

    static func label(_ service: MirroredService, index: Int) -> String {
        "services[\(index)] \(service.key)"
    }

    mutating func validateCluster(_ cluster: Cluster, object: String) {
        if !DNSLabel.isValid(cluster.name) {
            issue(object, "name", "\"\(cluster.name)\" is not a DNS label (lowercase letters, digits and '-', at most 63)")
        }
        guard let gateway = cluster.gateway else { return }
        if gateway.addresses.isEmpty {
            issue(object, "gateway.addresses", "a gateway needs at least one address")
        }
        var seen = Set<String>()
        for (i, address) in gateway.addresses.enumerated() {
            guard let canonical = IPAddressText.canonical(address) else {
                issue(object, "gateway.addresses[\(i)]", "\"\(address)\" is not an IP address")
                continue
            }
            if !seen.insert(canonical.text).inserted {
                issue(object, "gateway.addresses[\(i)]", "duplicate gateway address \(address)")
            }
        }
        checkPort(gateway.port, object: object, field: "gateway.port")
    }

    mutating func validateService(_ service: MirroredService, object: String, clusters: [String: Cluster]) {
        if !DNSLabel.isValid(service.name) {
            issue(object, "name", "\"\(service.name)\" is not a DNS label (lowercase letters, digits and '-', at most 63)")
        } else if service.mirroredName.utf8.count > 63 {
            issue(object, "name", "the mirrored name \"\(service.mirroredName)\" is longer than 63 characters")
        }
        if !DNSLabel.isValid(service.namespace) {
            issue(object, "namespace", "\"\(service.namespace)\" is not a DNS label")
        }
        switch (service.mode, service.cluster) {
        case (.federated, .some):
            issue(object, "cluster", "a federated service has no cluster of its own; name the cluster on each endpoint")
        case (.gateway, nil), (.remoteDiscovery, nil):
            issue(object, "cluster", "required for mode \(service.mode.rawValue)")
        case (_, .some(let name)):
            if let cluster = clusters[name] {
                if service.mode == .gateway, cluster.gateway == nil {
                    issue(object, "cluster", "gateway-mode service of cluster \"\(name)\", which has no gateway")
                }
            } else {
                issue(object, "cluster", "unknown cluster \"\(name)\"")
            }
        default:
            break
        }
        if service.ips.isEmpty { issue(object, "ips", "at least one ClusterIP is required") }
        var ips = Set<String>()
        for (i, ip) in service.ips.enumerated() {
            guard let canonical = IPAddressText.canonical(ip) else {
                issue(object, "ips[\(i)]", "\"\(ip)\" is not an IP address")
                continue
            }
            if !ips.insert(canonical.text).inserted { issue(object, "ips[\(i)]", "duplicate ClusterIP \(ip)") }
        }
        var ports = Set<String>()
        var portNames = Set<String>()
        for (i, port) in service.ports.enumerated() {
            let field = "ports[\(i)]"
            checkPort(port.port, object: object, field: "\(field).port")
            checkPort(port.targetPort, object: object, field: "\(field).targetPort")
            if let gatewayPort = port.gatewayPort { checkPort(gatewayPort, object: object, field: "\(field).gatewayPort") }
            if let name = port.name {
                if !DNSLabel.isValidPortName(name) {
                    issue(object, "\(field).name", "\"\(name)\" is not a valid port name (at most 15 lowercase letters, digits and '-')")
                } else if !portNames.insert(name).inserted {
                    issue(object, "\(field).name", "duplicate port name \"\(name)\"")
                }
            }
            if !ports.insert("\(port.protocol.rawValue)/\(port.port)").inserted {
                issue(object, "\(field).port", "duplicate port \(port.port)/\(port.protocol.rawValue)")
            }
        }
        validateEndpoints(service, object: object, clusters: clusters)
    }

    private mutating func validateEndpoints(_ service: MirroredService, object: String, clusters: [String: Cluster]) {
        if service.mode == .gateway, !service.endpoints.isEmpty {
            issue(object, "endpoints", "a gateway-mode service has no endpoints (traffic goes to the gateway); use mode remote-discovery for pod IPs")
            return
        }
        var seen = Set<String>()
        for (i, endpoint) in service.endpoints.enumerated() {
            let field = "endpoints[\(i)]"
            if let canonical = IPAddressText.canonical(endpoint.ip) {
                if !seen.insert(canonical.text).inserted { issue(object, "\(field).ip", "duplicate endpoint \(endpoint.ip)") }
            } else {
                issue(object, "\(field).ip", "\"\(endpoint.ip)\" is not an IP address")
            }
            if let hostname = endpoint.hostname, !DNSLabel.isValid(hostname) {
                issue(object, "\(field).hostname", "\"\(hostname)\" is not a DNS label")
            }
            switch (service.mode, endpoint.cluster) {
            case (.federated, nil):
                issue(object, "\(field).cluster", "required on every endpoint of a federated service")
            case (_, .some(let name)):
                if clusters[name] == nil {
                    issue(object, "\(field).cluster", "unknown cluster \"\(name)\"")
                } else if service.mode != .federated, name != service.cluster {
                    issue(object, "\(field).cluster", "endpoint of cluster \"\(name)\" in a service of cluster \"\(service.cluster ?? "")\"")
                }
            default:
                break
            }
        }
    }

    private mutating func checkPort(_ port: Int, object: String, field: String) {
        if !(1...65535).contains(port) {
            issue(object, field, "must be between 1 and 65535, got \(port)")
        }
    }

    private mutating func issue(_ object: String, _ field: String, _ message: String) {
        issues.append(ValidationIssue(object: object, field: field, message: message))
    }
}
