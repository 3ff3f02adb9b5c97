/// Semantic checks of an exports document: names, addresses, port ranges and uniqueness.
///
/// A document is accepted or rejected as a whole and every problem is listed, so an operator
/// fixes a file in one pass. An endpoint of a family that no gateway address has is not a
/// problem: a dual-stack service keeps both families' endpoints, and the gateway uses the
/// ones of its own addresses' families.
struct ExportsValidator {
    /// The gateway ports this cluster may hand out.
    let gatewayPorts: GatewayPortRange
    private(set) var issues: [ValidationIssue] = []

    init(gatewayPorts: GatewayPortRange) {
        self.gatewayPorts = gatewayPorts
    }

    /// Checks `document`, leaving alone what the reader could not read (it holds placeholders
    /// and has been reported already).
    mutating func validate(_ document: ExportsDocument, skipping unreadable: ExportsReader.Unreadable = .init()) {
        let object = ExportsReader.documentObject
        if !unreadable.cluster { checkLabel(document.cluster, object: object, field: "cluster") }
        if !unreadable.gatewayAddresses {
            if document.gatewayAddresses.isEmpty {
                issue(object, "gatewayAddresses", "at least one gateway address is required")
            }
            checkAddresses(document.gatewayAddresses.enumerated().map { ($0, $1) }, object: object,
                           field: { "gatewayAddresses[\($0)]" }, duplicate: "duplicate gateway address")
        }
        var firstWithKey: [String: Int] = [:]
        var gatewayPortUsers: [GatewayPortKey: ExportsReader.ItemPosition] = [:]
        for (index, service) in document.exports.enumerated() where !unreadable.exports.contains(index) {
            let object = ExportsReader.label(service, index: index)
            if let first = firstWithKey[service.key] {
                issue(object, "name", "duplicate export \(service.key), also defined as \(ExportsReader.label(document.exports[first], index: first))")
            } else {
                firstWithKey[service.key] = index
            }
            checkLabel(service.name, object: object, field: "name")
            checkLabel(service.namespace, object: object, field: "namespace")
            validatePorts(of: service, index: index, in: document, skipping: unreadable, gatewayPortUsers: &gatewayPortUsers)
            let endpoints = service.endpoints.enumerated().filter { !unreadable.endpoints.contains(.init(export: index, index: $0.offset)) }
            checkAddresses(endpoints.map { ($0.offset, $0.element.ip) }, object: object,
                           field: { "endpoints[\($0)].ip" }, duplicate: "duplicate endpoint")
        }
    }

    /// Checks the ports of `document.exports[index]`; `gatewayPortUsers` holds the first user
    /// of each gateway port so far, across the whole document.
    private mutating func validatePorts(of service: ExportedService, index: Int, in document: ExportsDocument,
                                        skipping unreadable: ExportsReader.Unreadable,
                                        gatewayPortUsers: inout [GatewayPortKey: ExportsReader.ItemPosition]) {
        let object = ExportsReader.label(service, index: index)
        var names = Set<String>()
        for (position, port) in service.ports.enumerated() where !unreadable.ports.contains(.init(export: index, index: position)) {
            let field = "ports[\(position)]"
            checkPort(port.port, object: object, field: "\(field).port")
            checkPort(port.targetPort, object: object, field: "\(field).targetPort")
            if checkPort(port.gatewayPort, object: object, field: "\(field).gatewayPort") {
                let key = GatewayPortKey(port)
                if !gatewayPorts.contains(port.gatewayPort) {
                    issue(object, "\(field).gatewayPort", "\(port.gatewayPort) is outside the gateway port range \(gatewayPorts)")
                } else if let user = gatewayPortUsers[key] {
                    // A gateway port alone names its service in a packet: the first user keeps it.
                    let owner = ExportsReader.label(document.exports[user.export], index: user.export)
                    issue(object, "\(field).gatewayPort", "\(port.gatewayPort)/\(port.protocol.rawValue) is already used by \(owner) ports[\(user.index)]")
                } else {
                    gatewayPortUsers[key] = ExportsReader.ItemPosition(export: index, index: position)
                }
            }
            if let name = port.name {
                if !DNSLabel.isValidPortName(name) {
                    issue(object, "\(field).name", "\"\(name)\" is not a valid port name (at most 15 lowercase letters, digits and '-')")
                } else if !names.insert(name).inserted {
                    issue(object, "\(field).name", "duplicate port name \"\(name)\"")
                }
            }
        }
    }

    /// A gateway port's identity in a packet: the protocol and the port number.
    private struct GatewayPortKey: Hashable {
        var number: Int
        var proto: L4Protocol
        init(_ port: ExportedPort) {
            number = port.gatewayPort
            proto = port.protocol
        }
    }

    /// Each of `addresses` (position, text) must be an IP address, and no two the same
    /// address however spelled.
    private mutating func checkAddresses(_ addresses: [(Int, String)], object: String, field: (Int) -> String, duplicate: String) {
        var seen = Set<IPAddressValue>()
        for (position, text) in addresses {
            guard let value = IPAddressValue(text) else {
                issue(object, field(position), "\"\(text)\" is not an IP address")
                continue
            }
            if !seen.insert(value).inserted { issue(object, field(position), "\(duplicate) \(text)") }
        }
    }

    private mutating func checkLabel(_ text: String, object: String, field: String) {
        if !DNSLabel.isValid(text) {
            issue(object, field, "\"\(text)\" is not a DNS label (lowercase letters, digits and '-', at most 63)")
        }
    }

    /// Whether `port` is a valid port number; reports it when not.
    @discardableResult
    private mutating func checkPort(_ port: Int, object: String, field: String) -> Bool {
        if (1...65535).contains(port) { return true }
        issue(object, field, "must be between 1 and 65535, got \(port)")
        return false
    }

    private mutating func issue(_ object: String, _ field: String, _ message: String) {
        issues.append(ValidationIssue(object: object, field: field, message: message))
    }
}
