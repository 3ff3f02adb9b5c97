import NFTables
import MirrorModel
import MirrorFeed

/// Translates mirror state into the packet-rewrite rules NFTables programs (docs/architecture.md, "The mirror state"
/// rules). Pure functions; the only place that knows both the feed model and the layout.
///
/// - gateway: every gateway address of the service's cluster, at the port's `gatewayPort` or
///   the gateway's port; a dead or missing gateway means no target.
/// - remote-discovery: the ready endpoints at `targetPort`.
/// - federated: the ready endpoints of every member cluster at `targetPort`.
/// A port with no target is rejected at once. Targets in clusters marked `masquerade` are
/// masqueraded.
enum RulesTranslator {
    /// The rules for one service, one per port. `gateways` (from ``gatewayAddresses(_:)``)
    /// saves parsing each gateway address again for every service of a large state, and lets
    /// the ports that use their gateway's own port share one target array.
    static func rules(for service: MirroredService, clusters: [String: Cluster],
                      gateways: [String: GatewayTargets]? = nil) -> [ServicePortRule] {
        let addresses = service.ips.compactMap(IPAddress.init)
        let name = service.key.description
        return service.ports.compactMap { port in
            guard let number = UInt16(exactly: port.port) else { return nil }
            return ServicePortRule(service: name, proto: port.protocol.number, port: number, addresses: addresses,
                                   targets: targets(of: service, port: port, clusters: clusters, gateways: gateways))
        }
    }

    /// A cluster's gateway addresses, parsed once, and the targets they make at the gateway's
    /// own port.
    struct GatewayTargets {
        var addresses: [IPAddress]
        /// Shared by every port that goes to the gateway's port (most of a large state): one
        /// array per cluster instead of one per mirrored port.
        var atGatewayPort: [ServicePortRule.Target]
    }

    /// Every cluster's gateway addresses, parsed once.
    static func gatewayAddresses(_ clusters: [String: Cluster]) -> [String: GatewayTargets] {
        clusters.compactMapValues { cluster in
            guard let gateway = cluster.gateway else { return nil }
            let addresses = gateway.addresses.compactMap(IPAddress.init)
            let port = UInt16(exactly: gateway.port)
            return GatewayTargets(addresses: addresses, atGatewayPort: port.map { port in
                addresses.map { ServicePortRule.Target(address: $0, port: port, masquerade: cluster.masquerade) }
            } ?? [])
        }
    }

    /// Where connections to `port` of `service` may go right now.
    static func targets(of service: MirroredService, port: ServicePort, clusters: [String: Cluster],
                        gateways: [String: GatewayTargets]? = nil) -> [ServicePortRule.Target] {
        switch service.mode {
        case .gateway:
            guard let cluster = service.cluster.flatMap({ clusters[$0] }), let gateway = cluster.gateway, gateway.alive,
                  let gatewayPort = UInt16(exactly: port.gatewayPort ?? gateway.port) else { return [] }
            let cached = service.cluster.flatMap { gateways?[$0] }
            if let cached, gatewayPort == UInt16(exactly: gateway.port) { return cached.atGatewayPort }
            let addresses = cached?.addresses ?? gateway.addresses.compactMap(IPAddress.init)
            return addresses.map {
                ServicePortRule.Target(address: $0, port: gatewayPort, masquerade: cluster.masquerade)
            }
        case .remoteDiscovery, .federated:
            guard let targetPort = UInt16(exactly: port.targetPort) else { return [] }
            return service.endpoints.filter(\.ready).compactMap { endpoint in
                guard let address = IPAddress(endpoint.ip) else { return nil }
                let owner = endpoint.cluster ?? service.cluster
                let masquerade = owner.flatMap { clusters[$0]?.masquerade } ?? false
                return ServicePortRule.Target(address: address, port: targetPort, masquerade: masquerade)
            }
        }
    }

    /// The whole layout for a store. It does not remember the rules: changes go through
    /// ``MirrorTables/replaceRules(_:with:)`` with the rules translated from the previous store.
    static func layout(for store: MirrorStore, dnsAddresses: [IPAddress], interceptedDNS: [IPAddress] = []) -> MirrorTables {
        let gateways = gatewayAddresses(store.clusters)
        let services = store.services.values.lazy.map { rules(for: $0, clusters: store.clusters, gateways: gateways) }
        var layout = MirrorTables(services: services, expectedPorts: store.services.count, dnsAddresses: dnsAddresses,
                                  interceptedDNS: interceptedDNS, rememberingRules: false)
        layout.replacePolicyRules([], with: policyRules(store, gateways: gateways))
        return layout
    }

    /// The services whose rules a change may alter: those changed, and those depending on a
    /// changed cluster (gateway addresses, liveness, masquerade).
    static func affectedServices(_ changes: ChangeSet, store: MirrorStore) -> Set<ServiceKey> {
        let keys = changes.addedServices.union(changes.changedServices).union(changes.removedServices)
        return keys.union(store.services(referencingAny: changes.changedClusters.union(changes.addedClusters).union(changes.removedClusters)))
    }
}
