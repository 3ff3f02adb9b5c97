import NFTables
import MirrorModel

/// Traffic policies of local services as ``PolicyPortRule``s (issue 17; docs/architecture.md
/// "nftables layout"). Pure functions of the mirror state, like the services' rules, so the
/// rules a change takes out are translated again from the previous state.
///
/// - A mirror backend's targets are exactly those its own service rule uses for the same port
///   number and protocol (gateway address:gatewayPort, or ready pod IPs:targetPort). A mirror
///   whose cluster is marked dead, or that has no live target, gets no share; its weight is
///   left out of the split. When no backend is left, everything is local.
/// - Failover: while the local service has no ready endpoint (`localReady` false), everything
///   goes to the first `failover` mirror that has live targets (the next one while it is
///   dead); with none, everything is local (kube-proxy answers as it would without a policy).
extension RulesTranslator {
    /// The rules for one policy, one per port.
    static func rules(for policy: TrafficPolicy, store: MirrorStore, gateways: [String: GatewayTargets]? = nil) -> [PolicyPortRule] {
        let addresses = policy.ips.compactMap(IPAddress.init)
        let name = policy.key.description
        return policy.ports.compactMap { port in
            guard let number = UInt16(exactly: port.port) else { return nil }
            return PolicyPortRule(policy: name, proto: port.protocol.number, port: number, addresses: addresses,
                                  backends: backends(of: policy, port: port, store: store, gateways: gateways))
        }
    }

    /// The backends in force for `port` of `policy` right now, with their live targets.
    static func backends(of policy: TrafficPolicy, port: PolicyPort, store: MirrorStore,
                         gateways: [String: GatewayTargets]? = nil) -> [PolicyPortRule.Backend] {
        func live(_ mirror: String) -> [ServicePortRule.Target] {
            liveTargets(of: mirror, namespace: policy.namespace, port: port, store: store, gateways: gateways)
        }
        guard policy.localReady else {
            for mirror in policy.failover {
                let targets = live(mirror)
                if !targets.isEmpty { return [.mirror(mirror, weight: 1, targets: targets)] }
            }
            return [.local(weight: 1)]
        }
        return policy.backends.map { backend in
            guard let mirror = backend.mirror else { return .local(weight: backend.weight) }
            return .mirror(mirror, weight: backend.weight, targets: live(mirror))
        }
    }

    /// The targets connections to `port` of the mirrored service `mirror` go to, as its own
    /// rule has them; none when the service or the port is missing or its cluster is dead.
    static func liveTargets(of mirror: String, namespace: String, port: PolicyPort, store: MirrorStore,
                            gateways: [String: GatewayTargets]? = nil) -> [ServicePortRule.Target] {
        guard let service = store.services[ServiceKey(namespace: namespace, mirroredName: mirror)],
              let servicePort = service.ports.first(where: { $0.port == port.port && $0.protocol == port.protocol }) else { return [] }
        if let cluster = service.cluster.flatMap({ store.clusters[$0] }), cluster.gateway?.alive == false { return [] }
        return targets(of: service, port: servicePort, clusters: store.clusters, gateways: gateways)
    }

    /// Every policy's rules.
    static func policyRules(_ store: MirrorStore, gateways: [String: GatewayTargets]? = nil) -> [PolicyPortRule] {
        guard !store.policies.isEmpty else { return [] }
        let gateways = gateways ?? gatewayAddresses(store.clusters)
        return store.policies.values.sorted { $0.key < $1.key }.flatMap { rules(for: $0, store: store, gateways: gateways) }
    }

    /// The policies whose rules a change may alter: those changed, and those sending traffic
    /// to a service whose rules may have changed (``affectedServices(_:store:)``), by the
    /// references of the state before and after the change.
    static func affectedPolicies(_ changes: ChangeSet, services: Set<ServiceKey>, store: MirrorStore, previous: MirrorStore) -> Set<PolicyKey> {
        var keys = changes.addedPolicies.union(changes.changedPolicies).union(changes.removedPolicies)
        guard !services.isEmpty else { return keys }
        keys.formUnion(store.policies(referencingAny: services))
        keys.formUnion(previous.policies(referencingAny: services))
        return keys
    }

    /// A policy's rules as service rules for ``StaleFlows``: its remote targets, so that UDP
    /// and SCTP flows pinned to a target it no longer uses move.
    static func flowRules(_ rules: [PolicyPortRule]) -> [ServicePortRule] {
        rules.map { rule in
            var targets: [ServicePortRule.Target] = []
            for family in Family.allCases where rule.addresses.contains(where: { $0.family == family }) {
                targets += Set(rule.slots(for: family).remote.map(\.target)).sorted()
            }
            return ServicePortRule(service: rule.policy, proto: rule.proto, port: rule.port, addresses: rule.addresses, targets: targets)
        }
    }
}
