/// Exports documents on the one fast JSON path: a 10k-port document is read in a fraction of
/// what `JSONDecoder` takes, which a gateway's start and every re-read file wait for. Same
/// contract as the state's: exactly what the strict form accepts (defaults filled, `null`
/// meaning absent, unknown and repeated fields refused), or a refusal without explanation,
/// after which the reader explains.
extension StateJSONDecoder {
    /// Decodes a whole exports document; nil when it is not one this decoder accepts.
    static func decodeExports(_ bytes: UnsafeBufferPointer<UInt8>) -> ExportsDocument? {
        var decoder = StateJSONDecoder(bytes)
        guard let document = try? decoder.exportsDocument(), (try? decoder.cursor.finish()) != nil else { return nil }
        return document
    }

    mutating func exportsDocument() throws -> ExportsDocument {
        var cluster: String?, addresses: [String]?, exports: [ExportedService] = []
        try object(fields: ["cluster", "gatewayAddresses", "exports"]) { decoder, field in
            switch field {
            case 0: cluster = try decoder.cursor.string()
            case 1: addresses = try decoder.list { try $0.cursor.string() }
            default: exports = try decoder.optionalList { try $0.exportedService() } ?? []
            }
        }
        guard let cluster, let addresses else { throw JSONCursor.Mismatch() }
        return ExportsDocument(cluster: cluster, gatewayAddresses: addresses, exports: exports)
    }

    private mutating func exportedService() throws -> ExportedService {
        var name: String?, namespace: String?, ports: [ExportedPort] = [], endpoints: [ExportEndpoint] = []
        try object(fields: ["name", "namespace", "ports", "endpoints"]) { decoder, field in
            switch field {
            case 0: name = try decoder.cursor.string()
            case 1: namespace = decoder.interned(try decoder.cursor.string())
            case 2: ports = try decoder.optionalList { try $0.exportedPort() } ?? []
            default: endpoints = try decoder.optionalList { try $0.exportEndpoint() } ?? []
            }
        }
        guard let name, let namespace else { throw JSONCursor.Mismatch() }
        return ExportedService(name: name, namespace: namespace, ports: ports, endpoints: endpoints)
    }

    private mutating func exportedPort() throws -> ExportedPort {
        var name: String?, proto = L4Protocol.tcp, port: Int?, targetPort: Int?, gatewayPort: Int?
        try object(fields: ["name", "protocol", "port", "targetPort", "gatewayPort"]) { decoder, field in
            switch field {
            case 0: name = try decoder.optionalString().map { decoder.interned($0) }
            case 1:
                if !decoder.cursor.skipNull() {
                    guard let parsed = L4Protocol(rawValue: try decoder.cursor.string()) else { throw JSONCursor.Mismatch() }
                    proto = parsed
                }
            case 2: port = try decoder.cursor.int()
            case 3: targetPort = decoder.cursor.skipNull() ? nil : try decoder.cursor.int()
            default: gatewayPort = try decoder.cursor.int()
            }
        }
        guard let port, let gatewayPort else { throw JSONCursor.Mismatch() }
        return ExportedPort(name: name, protocol: proto, port: port, targetPort: targetPort, gatewayPort: gatewayPort)
    }

    private mutating func exportEndpoint() throws -> ExportEndpoint {
        var ip: String?, ready = true
        try object(fields: ["ip", "ready"]) { decoder, field in
            if field == 0 { ip = try decoder.cursor.string() } else { ready = decoder.cursor.skipNull() ? true : try decoder.cursor.bool() }
        }
        guard let ip else { throw JSONCursor.Mismatch() }
        return ExportEndpoint(ip: ip, ready: ready)
    }
}
