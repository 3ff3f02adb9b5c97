/// Reads a ``DocumentValue`` tree into an ``ExportsDocument``, collecting every structural
/// problem (unknown field, wrong type, missing field) instead of stopping at the first.
///
/// What could not be read is remembered in ``unreadable`` so that semantic validation leaves
/// it alone: a gateway port that is missing must not also be reported as "out of range".
struct ExportsReader: DocumentReading {
    var issues: [ValidationIssue] = []
    private(set) var unreadable = Unreadable()

    /// The parts of a document that hold placeholders instead of what the file says.
    struct Unreadable {
        var cluster = false
        var gatewayAddresses = false
        /// Exports whose name or namespace could not be read: their every check would be noise.
        var exports: Set<Int> = []
        var ports: Set<ItemPosition> = []
        var endpoints: Set<ItemPosition> = []
    }

    /// Where a port or an endpoint is: its export's index and its own.
    struct ItemPosition: Hashable {
        var export: Int
        var index: Int
    }

    /// The label of the document's own fields in issues.
    static let documentObject = "document"

    mutating func read(_ document: DocumentValue) -> ExportsDocument {
        var result = ExportsDocument(cluster: "", gatewayAddresses: [])
        let object = Self.documentObject
        guard let top = map(document, object: object, field: "") else {
            unreadable.cluster = true
            unreadable.gatewayAddresses = true
            return result
        }
        var fields = DocumentFields(top)
        let before = issues.count
        if let cluster = fields.take("cluster") {
            result.cluster = string(cluster, object: object, field: "cluster") ?? ""
        } else {
            missing(object: object, field: "cluster", hint: "this cluster's name")
        }
        unreadable.cluster = issues.count > before
        let beforeAddresses = issues.count
        if let addresses = fields.take("gatewayAddresses") {
            result.gatewayAddresses = strings(addresses, object: object, field: "gatewayAddresses")
        } else {
            missing(object: object, field: "gatewayAddresses", hint: "the addresses this cluster's gateways listen on")
        }
        unreadable.gatewayAddresses = issues.count > beforeAddresses
        if let exports = fields.take("exports"), let items = list(exports, object: object, field: "exports") {
            result.exports = items.enumerated().map { readExport($1, index: $0) }
        }
        reportUnknown(fields, object: object, prefix: "")
        return result
    }

    /// The label of an export in issues: `exports[0] default/bar`, or only the index when its
    /// identity is unknown.
    static func label(_ service: ExportedService, index: Int) -> String {
        service.name.isEmpty || service.namespace.isEmpty ? "exports[\(index)]" : "exports[\(index)] \(service.key)"
    }

    // MARK: objects

    private mutating func readExport(_ value: DocumentValue, index: Int) -> ExportedService {
        var service = ExportedService(name: "", namespace: "", ports: [])
        var object = "exports[\(index)]"
        guard let body = map(value, object: object, field: "") else {
            unreadable.exports.insert(index)
            return service
        }
        var fields = DocumentFields(body)
        // The identity first, so every later message names the service.
        let before = issues.count
        let name = fields.take("name").flatMap { string($0, object: object, field: "name") }
        let namespace = fields.take("namespace").flatMap { string($0, object: object, field: "namespace") }
        service.name = name ?? ""
        service.namespace = namespace ?? ""
        object = Self.label(service, index: index)
        if name == nil, issues.count == before { missing(object: object, field: "name") }
        if namespace == nil, issues.count == before { missing(object: object, field: "namespace") }
        if name == nil || namespace == nil { unreadable.exports.insert(index) }

        if let ports = fields.take("ports"), let items = list(ports, object: object, field: "ports") {
            service.ports = items.enumerated().map { position, item in
                let port = readPort(item, object: object, field: "ports[\(position)]")
                if port == nil { unreadable.ports.insert(.init(export: index, index: position)) }
                return port ?? ExportedPort(port: 0, gatewayPort: 0)
            }
        }
        if let endpoints = fields.take("endpoints"), let items = list(endpoints, object: object, field: "endpoints") {
            service.endpoints = items.enumerated().map { position, item in
                let endpoint = readEndpoint(item, object: object, field: "endpoints[\(position)]")
                if endpoint == nil { unreadable.endpoints.insert(.init(export: index, index: position)) }
                return endpoint ?? ExportEndpoint(ip: "")
            }
        }
        reportUnknown(fields, object: object, prefix: "")
        return service
    }

    /// The port, or nil when one of its values could not be read. An unknown field does not
    /// make it unreadable: the values it has are still checked.
    private mutating func readPort(_ value: DocumentValue, object: String, field: String) -> ExportedPort? {
        guard let body = map(value, object: object, field: field) else { return nil }
        var fields = DocumentFields(body)
        let before = issues.count
        let name = fields.take("name").flatMap { optionalString($0, object: object, field: "\(field).name") }
        let proto = fields.take("protocol").flatMap { l4Protocol($0, object: object, field: "\(field).protocol") }
        let port = requiredInt("port", of: &fields, object: object, field: field)
        let targetPort = fields.take("targetPort").flatMap { int($0, object: object, field: "\(field).targetPort") }
        let gatewayPort = requiredInt("gatewayPort", of: &fields, object: object, field: field)
        let valuesRead = issues.count == before
        reportUnknown(fields, object: object, prefix: "\(field).")
        guard valuesRead, let port, let gatewayPort else { return nil }
        return ExportedPort(name: name, protocol: proto ?? .tcp, port: port, targetPort: targetPort, gatewayPort: gatewayPort)
    }

    private mutating func readEndpoint(_ value: DocumentValue, object: String, field: String) -> ExportEndpoint? {
        guard let body = map(value, object: object, field: field) else { return nil }
        var fields = DocumentFields(body)
        let before = issues.count
        let ip = fields.take("ip").flatMap { string($0, object: object, field: "\(field).ip") }
        if ip == nil, issues.count == before { missing(object: object, field: "\(field).ip") }
        let ready = fields.take("ready").flatMap { bool($0, object: object, field: "\(field).ready") }
        let valuesRead = issues.count == before
        reportUnknown(fields, object: object, prefix: "\(field).")
        guard valuesRead, let ip else { return nil }
        return ExportEndpoint(ip: ip, ready: ready ?? true)
    }

    /// An integer field of a port that must be present; nil (reported) when absent or not an integer.
    private mutating func requiredInt(_ key: String, of fields: inout DocumentFields, object: String, field: String) -> Int? {
        guard let value = fields.take(key) else {
            missing(object: object, field: "\(field).\(key)")
            return nil
        }
        return int(value, object: object, field: "\(field).\(key)")
    }
}
