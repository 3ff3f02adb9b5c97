import NFTables
import MirrorModel
import MirrorFeed

/// Translates an exports document into the rules of the gateway's tables: each exported
/// port's `gatewayAddress . proto . gatewayPort` goes to the service's ready endpoints at
/// `targetPort`, masqueraded so replies come back through the gateway. A port without a ready
/// endpoint gets no target and is rejected at once.
enum GatewayTranslator {
    /// The rules of one exported service, one per port.
    static func rules(for export: ExportedService, gatewayAddresses: [IPAddress]) -> [ServicePortRule] {
        let endpoints = export.endpoints.filter(\.ready).compactMap { IPAddress($0.ip) }
        return export.ports.compactMap { port in
            guard let gatewayPort = UInt16(exactly: port.gatewayPort), let targetPort = UInt16(exactly: port.targetPort) else { return nil }
            return ServicePortRule(service: export.key, proto: port.protocol.number, port: gatewayPort, addresses: gatewayAddresses,
                                   targets: endpoints.map { ServicePortRule.Target(address: $0, port: targetPort, masquerade: true) })
        }
    }
}
