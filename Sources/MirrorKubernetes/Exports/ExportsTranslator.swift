import Foundation
import MirrorModel

/// Something the export side could not do, naming the object: `Service default/bar: …`.
public struct ExportProblem: Sendable, Hashable, Codable, CustomStringConvertible {
    /// `Service namespace/name`, `Service namespace/name port http`, `ConfigMap ns/name`, …
    public var object: String
    public var message: String

    public init(object: String, message: String) {
        self.object = object
        self.message = message
    }

    public var description: String { "\(object): \(message)" }
}

/// An exported Service as the export side sees it: its ports that can carry a gateway port,
/// each with its key, and what its gateway-ports annotation says.
struct ExportCandidate: Sendable {
    var service: KubeService
    /// The ports the mirror can carry (as the importing side reads them), in spec order.
    var ports: [MirrorTranslator.ResolvedPort]
    var annotation: GatewayPortsAnnotation.Reading

    var namespace: String { service.metadata.namespace ?? "" }
    var name: String { service.metadata.name }
    var key: String { service.key }
    var uid: String? { service.metadata.uid }
    var object: String { "Service \(key)" }
    var portKeys: [String] { ports.map { GatewayPortsAnnotation.key(of: $0.port) } }

    /// The Service as a candidate, or nil (with the reason in `problems`) when it cannot be
    /// exported at all; ports that cannot be carried are reported and left out.
    static func make(_ service: KubeService, problems: inout [ExportProblem]) -> ExportCandidate? {
        let object = "Service \(service.key)"
        guard let namespace = service.metadata.namespace, DNSLabel.isValid(namespace), DNSLabel.isValid(service.metadata.name) else {
            problems.append(ExportProblem(object: object, message: "name or namespace is not a DNS label; not exported"))
            return nil
        }
        if service.spec.type == "ExternalName" {
            problems.append(ExportProblem(object: object, message: "type ExternalName has no ports to export"))
            return nil
        }
        var report = MirrorTranslator.Report(cluster: nil)
        let ports = MirrorTranslator.mirroredPorts(service, object: object, report: &report)
        problems += report.skips.map { ExportProblem(object: $0.object, message: $0.reason.description) }
        let text = service.metadata.annotations?[MirrorTranslator.gatewayPortsAnnotation]
        let annotation = text.map { GatewayPortsAnnotation.read($0, ports: ports.map(\.port)) } ?? .absent
        return ExportCandidate(service: service, ports: ports, annotation: annotation)
    }
}

/// The `mirror-agent.io/gateway-ports` annotation (``MirrorTranslator/gatewayPortsAnnotation``),
/// read with the importing side's rules and written in its canonical form.
enum GatewayPortsAnnotation {
    enum Reading: Sendable, Equatable {
        case absent
        /// Port key → gateway port, for the entries naming a port of the service (entries
        /// naming none are stale, e.g. a removed port, and ignored).
        case entries([String: Int])
        /// Someone else's text that is not `key=port,…`: the Service is left alone.
        case malformed(String)
    }

    /// A port's key: its name, or `<port>/<PROTOCOL>` when unnamed.
    static func key(of port: ServicePort) -> String {
        port.name ?? "\(port.port)/\(port.protocol.rawValue)"
    }

    /// Reads `text` as the importers do (`name=20001`, `8125/UDP=20002`, a bare `53=20003` for
    /// every protocol of port 53), but refusing it as a whole when any entry is unreadable or
    /// two entries give one port different gateway ports: half of someone's text is not used.
    static func read(_ text: String, ports: [ServicePort]) -> Reading {
        var result: [String: Int] = [:]
        for rawEntry in text.split(separator: ",") {
            let entry = rawEntry.trimmingCharacters(in: .whitespaces)
            guard !entry.isEmpty else { continue }
            let parts = entry.split(separator: "=", omittingEmptySubsequences: false)
            guard parts.count == 2, let gatewayPort = Int(parts[1].trimmingCharacters(in: .whitespaces)),
                  (1...65535).contains(gatewayPort) else {
                return .malformed("\"\(entry)\" is not key=port")
            }
            let key = parts[0].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty else { return .malformed("\"\(entry)\" has no key") }
            let matching: [ServicePort]
            if let number = Int(key) {
                matching = ports.filter { $0.port == number }
            } else if let slash = key.firstIndex(of: "/") {
                guard let number = Int(key[..<slash]),
                      let proto = L4Protocol(rawValue: String(key[key.index(after: slash)...]).uppercased()) else {
                    return .malformed("\"\(entry)\": \"\(key)\" is not a port name nor <port>/<PROTOCOL>")
                }
                matching = ports.filter { $0.port == number && $0.protocol == proto }
            } else {
                matching = ports.filter { $0.name == key }
            }
            for port in matching {
                let portKey = self.key(of: port)
                if let other = result[portKey], other != gatewayPort {
                    return .malformed("port \(portKey) is given two gateway ports, \(other) and \(gatewayPort)")
                }
                result[portKey] = gatewayPort
            }
        }
        return .entries(result)
    }

    /// The canonical text for `ports` (in the Service's order) with their gateway ports;
    /// nil when no port has one.
    static func render(_ ports: [(key: String, gatewayPort: Int)]) -> String? {
        ports.isEmpty ? nil : ports.map { "\($0.key)=\($0.gatewayPort)" }.joined(separator: ",")
    }
}

/// The pure translation from this cluster's exported Services, their EndpointSlices and the
/// allocation record to the exports document its gateways serve.
///
/// A port is exported only with the gateway port the record gives the Service's instance
/// (uid): the record, not the annotation, is what the allocator committed, so a gateway
/// never serves a port that another Service holds. Target ports and endpoints are resolved
/// from the slices as the importing side does for pod-IP modes
/// (``MirrorTranslator/resolveEndpoints``): a named `targetPort` by the slice port of the same
/// name, ready endpoints only, a slice disagreeing on the target ports left out.
public enum ExportsTranslator {
    public struct Result: Sendable, Equatable {
        public var document: ExportsDocument
        /// What was left out, naming the object.
        public var problems: [ExportProblem]
    }

    public static func translate(cluster: String, gatewayAddresses: [String], services: [KubeService],
                                 endpointSlices: [KubeEndpointSlice], record: GatewayPortRecord,
                                 range: GatewayPortRange) -> Result {
        var problems: [ExportProblem] = []
        let slices = MirrorTranslator.slicesByService(endpointSlices)
        var exports: [ExportedService] = []
        for service in services.sorted(by: { $0.key < $1.key }) {
            guard service.metadata.deletionTimestamp == nil,
                  let candidate = ExportCandidate.make(service, problems: &problems) else { continue }
            var ports: [MirrorTranslator.ResolvedPort] = []
            for var port in candidate.ports {
                let key = GatewayPortsAnnotation.key(of: port.port)
                guard let gatewayPort = record.port(namespace: candidate.namespace, name: candidate.name, portKey: key,
                                                    uid: candidate.uid), range.contains(gatewayPort) else {
                    // Not allocated yet, or not at all: the allocator reports why.
                    continue
                }
                port.port.gatewayPort = gatewayPort
                ports.append(port)
            }
            guard !ports.isEmpty else { continue }
            var report = MirrorTranslator.Report(cluster: nil)
            let resolved = MirrorTranslator.resolveEndpoints(service, ports: ports, slices: slices[service.key] ?? [], cluster: nil,
                                                             object: candidate.object, report: &report)
            problems += report.skips.map { ExportProblem(object: $0.object, message: $0.reason.description) }
            let exported = resolved.ports.compactMap { resolved -> ExportedPort? in
                guard let gatewayPort = resolved.port.gatewayPort else { return nil }
                return ExportedPort(name: resolved.port.name, protocol: resolved.port.protocol, port: resolved.port.port,
                                    targetPort: resolved.port.targetPort, gatewayPort: gatewayPort)
            }
            guard !exported.isEmpty else { continue }
            let endpoints = resolved.endpoints.map { ExportEndpoint(ip: $0.ip, ready: true) }.sorted { $0.ip < $1.ip }
            exports.append(ExportedService(name: candidate.name, namespace: candidate.namespace, ports: exported, endpoints: endpoints))
        }
        let document = ExportsDocument(cluster: cluster, gatewayAddresses: gatewayAddresses, exports: exports)
        return Result(document: document, problems: problems)
    }
}
