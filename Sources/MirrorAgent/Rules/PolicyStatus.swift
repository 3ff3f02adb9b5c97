import NFTables
import MirrorModel

extension AgentStatus {
    /// One backend of one policy port in `dump`: its share right now and the connections the
    /// kernel sent it.
    struct PolicyRow: Codable, Sendable, Equatable {
        /// `namespace/name`
        var policy: String
        /// `tcp/80`
        var port: String
        /// `local` or the mirrored name (`web-paris`).
        var backend: String
        /// The share of new connections it gets now (0 … 1), from the slots in force (those of
        /// the first ClusterIP's family).
        var share: Double
        /// Connections' first packets the kernel sent it (summed over ClusterIPs and
        /// families); nil when the counters were not read.
        var packets: UInt64?
        /// Why the split is not the configured one (`failover: no ready local endpoint`, `no
        /// live target`), if it is not.
        var note: String? = nil
    }

    /// The policy rows for `store`; `counters` (per element comment, as read from the kernel)
    /// fill in the packets.
    static func policies(_ store: MirrorStore, counters: [String: Counter]) -> [PolicyRow] {
        guard !store.policies.isEmpty else { return [] }
        let gateways = RulesTranslator.gatewayAddresses(store.clusters)
        var rows: [PolicyRow] = []
        for policy in store.policies.values.sorted(by: { $0.key < $1.key }) {
            for rule in RulesTranslator.rules(for: policy, store: store, gateways: gateways) {
                let family = rule.addresses.first?.family ?? .ip
                let slots = rule.slots(for: family)
                let shares = slots.slotsByBackend
                // The configured backends (or the failover mirror in force), then local when
                // it has a share or counts without being one of them.
                var names: [String] = []
                for backend in rule.backends where !names.contains(backend.name) { names.append(backend.name) }
                if !policy.localReady {
                    for backend in policy.backends where !names.contains(backend.mirror ?? PolicyPortRule.localBackend) {
                        names.append(backend.mirror ?? PolicyPortRule.localBackend)
                    }
                }
                if !names.contains(PolicyPortRule.localBackend) { names.append(PolicyPortRule.localBackend) }
                for name in names {
                    let backend = rule.backends.first { $0.name == name }
                    var note: String?
                    if !policy.localReady {
                        if let backend, shares[name] != nil {
                            note = backend.isLocal ? "no ready local endpoint, no live failover mirror" : "failover: no ready local endpoint"
                        }
                    } else if let backend, !backend.isLocal, backend.weight > 0, shares[name] == nil {
                        note = "no live target"
                    }
                    rows.append(PolicyRow(policy: policy.key.description, port: rule.portName, backend: name,
                                          share: Double(shares[name] ?? 0) / Double(slots.count),
                                          packets: counters.isEmpty ? nil : counters[rule.counterComment(backend: name)]?.packets ?? 0,
                                          note: note))
                }
            }
        }
        return rows
    }

    /// Packets per policy and backend, summed over ports (for `/metrics`), from the kernel's
    /// per-comment counters.
    static func policyPackets(_ counters: [String: (packets: UInt64, bytes: UInt64)]) -> [PolicyBackendKey: UInt64] {
        var totals: [PolicyBackendKey: UInt64] = [:]
        for (comment, counter) in counters where comment.hasPrefix("policy ") {
            guard let label = PolicyPortRule.counterLabel(comment) else { continue }
            totals[PolicyBackendKey(policy: label.policy, backend: label.backend), default: 0] &+= counter.packets
        }
        return totals
    }

    struct PolicyBackendKey: Hashable, Sendable {
        var policy: String
        var backend: String
    }
}
