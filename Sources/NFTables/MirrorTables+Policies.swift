/// Traffic policies in the node agent's tables (docs/architecture.md "nftables layout"): for a
/// local service's ClusterIP:port, a weighted choice per new connection between the local
/// service and mirrors' targets, made before kube-proxy sees the connection.
///
/// Per family:
/// - `policy-ports`: verdict map `daddr . l4proto . dport : goto policy-N`, N the port's
///   slot count (``PolicySlots``); looked up by the last rule of the nat chains at `dstnat - 1`;
/// - `policy-N`: one shared chain per slot count, standing for every count a port may have
///   (``policySlotCounts``: 1 … 16 and the divisors of 1000), so changing weights, targets or
///   readiness only ever changes elements. Its rules:
///   `dnat to daddr . l4proto . dport . numgen random mod N map @policy-slots` — a remote slot
///   DNATs to its target; a local slot has no element, the lookup misses and the next rule
///   `daddr . l4proto . dport @policy-local` only counts it; the chain ends without a verdict,
///   our nat chain accepts without a NAT binding, and kube-proxy's nat chain at `dstnat`
///   (a later priority of the same hook) still runs and DNATs to a local pod;
/// - `policy-slots`: map `daddr . l4proto . dport . k : addr . port`, the remote slots, with
///   a counter each; its comment names the policy, port and backend
///   (``PolicyPortRule/counterComment(backend:)``), so per-backend packets are the sum over
///   the backend's slots;
/// - `policy-local`: `daddr . l4proto . dport`, counting the local share of each port.
/// Targets in masqueraded clusters share the services' `masquerade-targets` (counted users).
/// A data map rather than a verdict map per slot keeps the kernel's validation of the nat
/// chains linear (no verdict map behind a verdict map) and needs no chain per target.
extension MirrorTables {
    public static let policyPortsMap = "policy-ports"
    public static let policySlotsMap = "policy-slots"
    public static let policyLocalSet = "policy-local"
    /// The shared chain for ports with `count` slots.
    public static func policyChain(_ count: Int) -> String { "policy-\(count)" }
    /// Every slot count a port can have (see ``PolicySlots``); each has its chain always.
    public static let policySlotCounts: [Int] = (1 ... PolicySlots.bound).filter(PolicySlots.isStanding)

    /// The nat chains' rule sending policy'd ports to their `policy-N` chain.
    static func policyRule(family: Family) -> Rule {
        Rule(family: family, [.slotVerdictMap(set: policyPortsMap)], comment: "traffic policies")
    }

    /// Adds the policy maps and the standing `policy-N` chains to `table`.
    static func addPolicySkeleton(to table: inout Table) {
        let family = table.id.family
        let slot: [DataType] = [family.addressType, .inetProto, .inetService]
        table.add(NFTSet(name: policyPortsMap, keyTypes: slot, dataTypes: [.verdict]))
        table.add(NFTSet(name: policySlotsMap, keyTypes: slot + [.integer], dataTypes: [family.addressType, .inetService], counter: true))
        table.add(NFTSet(name: policyLocalSet, keyTypes: slot, counter: true))
        for count in policySlotCounts {
            table.add(Chain(name: policyChain(count)), rules: [
                Rule(family: family, [.slotBalanceMap(set: policySlotsMap, modulus: UInt32(count))], comment: "\(count) slots"),
                Rule(family: family, [.slotLookup(set: policyLocalSet)], comment: "local share"),
            ])
        }
    }

    /// Replaces the rules of `policy` by `rules` (none: the policy is gone), returning what
    /// changed for the diff.
    /// - Precondition: the layout remembers rules (``remembersRules``).
    @discardableResult
    public mutating func setPolicyRules(_ rules: [PolicyPortRule], forPolicy policy: String) -> DiffScope {
        precondition(remembersRules, "setPolicyRules(_:forPolicy:) needs a layout that remembers rules; use replacePolicyRules(_:with:)")
        var scope = DiffScope()
        for rule in policies.removeValue(forKey: policy) ?? [] { apply(rule, adding: false, scope: &scope) }
        for rule in rules { apply(rule, adding: true, scope: &scope) }
        if !rules.isEmpty { policies[policy] = rules }
        return scope
    }

    /// Takes out `old` (the rules of one or more policies exactly as they were last added) and
    /// puts in `new`, returning what changed for the diff. The caller vouches for `old`, as
    /// for ``replaceRules(_:with:)``.
    @discardableResult
    public mutating func replacePolicyRules(_ old: [PolicyPortRule], with new: [PolicyPortRule]) -> DiffScope {
        var scope = DiffScope()
        for rule in old { apply(rule, adding: false, scope: &scope) }
        for rule in new { apply(rule, adding: true, scope: &scope) }
        if remembersRules {
            for policy in Set(old.map(\.policy)) { policies[policy] = nil }
            for rule in new { policies[rule.policy, default: []].append(rule) }
        }
        return scope
    }

    /// Adds or removes everything `rule` contributes, in both tables. Roles without traffic
    /// policies (gateways) ignore policies.
    private mutating func apply(_ rule: PolicyPortRule, adding: Bool, scope: inout DiffScope) {
        guard role.trafficPolicies else { return }
        for family in Family.allCases {
            let vips = rule.addresses.filter { $0.family == family }
            guard !vips.isEmpty else { continue }
            let id = TableID(family: family, name: role.tableName)
            guard var table = desired.tables.removeValue(forKey: id) else { continue }
            defer { desired.tables[id] = table }
            let slots = rule.slots(for: family)
            func put(_ set: String, _ key: ValueList, _ element: @autoclosure () -> Element) {
                scope.record(id, set: set, key: key, previous: table.elements[set]?[key])
                table.elements[set, default: [:]][key] = adding ? element() : nil
            }
            for vip in vips {
                let key: ValueList = [.address(vip), .proto(rule.proto), .port(rule.port)]
                put(Self.policyPortsMap, key, Element(key: key, data: .verdict(.goto(Self.policyChain(slots.count))), comment: "policy \(rule.policy)"))
                put(Self.policyLocalSet, key, Element(key: key, comment: rule.counterComment(backend: PolicyPortRule.localBackend)))
                for (index, slot) in slots.remote.enumerated() {
                    let slotKey: ValueList = [.address(vip), .proto(rule.proto), .port(rule.port), .number(UInt32(index))]
                    put(Self.policySlotsMap, slotKey, Element(key: slotKey, data: .values([.address(slot.target.address), .port(slot.target.port)]),
                                                               comment: rule.counterComment(backend: slot.backend)))
                }
            }
            // Masqueraded targets: one user per target of this port, shared with services.
            for target in Set(slots.remote.map(\.target)) where target.masquerade {
                let key: ValueList = [.address(target.address), .proto(rule.proto), .port(target.port)]
                let (before, users) = masqueradeUsers[id, default: UseCounts()].add(adding ? 1 : -1, to: key)
                guard (before == 0) != (users == 0) else { continue }
                scope.record(id, set: Self.masqueradeSet, key: key, previous: table.elements[Self.masqueradeSet]?[key])
                table.elements[Self.masqueradeSet, default: [:]][key] = users > 0 ? Element(key: key) : nil
            }
        }
    }
}
