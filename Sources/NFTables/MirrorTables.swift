/// The agent's nftables layout, built from ``ServicePortRule``s (docs/architecture.md "nftables layout").
///
/// Per family, one table `mirror-agent` holding:
/// - `service-dnat-0` … `-15`: maps `daddr . l4proto . dport : addr . port` for single-target
///   ports (split by the ClusterIP's low bits; a mask and compare picks the map);
/// - `service-chains`: verdict map sending a port with N ≥ 2 targets to the shared chain
///   `balance-N`, whose one rule does
///   `dnat to daddr . l4proto . dport . numgen random mod N map @balance-targets`;
/// - `balance-targets`: map `daddr . l4proto . dport . k : addr . port` holding target k of
///   every multi-target port (k uniform in 0..<N). Chains exist per target count, not per
///   service (always for N ≤ 16, else while used), so adding, removing or changing a
///   multi-target service only touches elements: no rule is parsed and no NAT rule
///   validated on the change path;
/// - `rejected-services`: ports with no live target, rejected in filter chains at prerouting
///   and output (TCP reset, else ICMP port unreachable);
/// - `masquerade-targets`: targets in clusters marked `masquerade`, masqueraded at postrouting
///   when the connection was DNATed;
/// - nat chains at prerouting and output at priority -101 (just before `dstnat`, so kube-proxy
///   never sees mirrored ClusterIPs), and raw-priority chains with NOTRACK for the DNS address;
/// - on nodes, traffic policies of local services: `policy-ports`, `policy-N`, `policy-slots`
///   and `policy-local` (MirrorTables+Policies.swift).
/// The per-port lookup sets carry per-element counters (one per mirrored port: packets and
/// bytes per service), and every such element's comment names its service. Updates are
/// incremental: ``setRules(_:forService:)`` replaces one service's ports and returns the diff
/// scope it touched.
public struct MirrorTables: Sendable {
    /// Whose tables a layout describes: the node agent's, or a gateway's, which has the same
    /// port maps keyed by its own address and gateway port, and a source filter in front.
    public struct Role: Sendable, Equatable {
        public var tableName: String
        /// Sources allowed to reach the ports; nil for no filter (the node agent's clients are
        /// the node's own pods). With a filter, every port is also in ``MirrorTables/guardedPortsSet``,
        /// and packets to it from any other source are dropped before conntrack sees them.
        public var allowedSources: [IPPrefix]?
        /// Whether the tables hold traffic policies (the node agent's; see
        /// MirrorTables+Policies.swift).
        public var trafficPolicies: Bool

        public init(tableName: String, allowedSources: [IPPrefix]?, trafficPolicies: Bool = false) {
            self.tableName = tableName
            self.allowedSources = allowedSources
            self.trafficPolicies = trafficPolicies
        }

        /// The node agent: `ip mirror-agent` / `ip6 mirror-agent`, no source filter, traffic
        /// policies.
        public static let node = Role(tableName: MirrorTables.tableName, allowedSources: nil, trafficPolicies: true)

        /// `mirror-agent gateway`: `ip mirror-gateway` / `ip6 mirror-gateway`.
        public static func gateway(allowedSources: [IPPrefix]) -> Role {
            Role(tableName: "mirror-gateway", allowedSources: allowedSources.sorted())
        }

        /// The role's tables, one per family.
        public var tableIDs: [TableID] { Family.allCases.map { TableID(family: $0, name: tableName) } }
    }

    /// The node agent's table name.
    public static let tableName = "mirror-agent"
    /// The single-target map is split into this many maps by the low bits of the ClusterIP:
    /// the kernel dumps a set by re-walking it from the start for every netlink message, so
    /// reading one 100k-element map back costs O(n²); sixteen maps cost a sixteenth of that.
    /// The packet path still does one lookup (a mask and compare picks the map first).
    public static let dnatShards = 16
    /// The names of the single-target maps (`service-dnat-0` … `service-dnat-15`).
    public static let dnatMaps = (0 ..< dnatShards).map { "service-dnat-\($0)" }

    /// The single-target map holding `address`'s slots.
    public static func dnatMap(for address: IPAddress) -> String { dnatMaps[shard(of: address)] }

    static func shard(of address: IPAddress) -> Int {
        let lastByte = address.family == .ip ? (address.high >> 32) & 0xff : address.low & 0xff
        return Int(lastByte) % dnatShards
    }
    public static let chainMap = "service-chains"
    /// Target k of every multi-target port, keyed `daddr . l4proto . dport . k`.
    public static let balanceMap = "balance-targets"
    /// The shared chain that spreads connections over `count` targets.
    public static func balanceChain(_ count: Int) -> String { "balance-\(count)" }
    /// Target counts whose chains are always there: adding the first user of a chain (or
    /// deleting the last) makes the kernel validate the new NAT rule and every path to it,
    /// ~5–15 ms at 100k services, so the common counts never come and go on the change path.
    /// Larger counts get their chain with their first user and lose it with the last.
    public static let standingBalanceCounts = 2 ... 16
    public static let rejectSet = "rejected-services"
    public static let masqueradeSet = "masquerade-targets"
    /// With a source filter: every port (`daddr . l4proto . dport`), counting the packets
    /// dropped because their source is not allowed.
    public static let guardedPortsSet = "guarded-ports"
    /// Priority of the source filter: raw, so a refused packet never creates a conntrack entry.
    public static let sourceFilterPriority: Int32 = -300
    /// Priority of the nat and filter chains: `dstnat - 1`.
    public static let priority: Int32 = -101

    /// The tables the node agent owns.
    public static let tableIDs = Role.node.tableIDs

    public let role: Role

    /// (Set here and in MirrorTables+Policies.swift.)
    public internal(set) var desired: Ruleset
    /// The rules in force, per owning service (``ServicePortRule/service``): what to take out
    /// again when a service changes through ``setRules(_:forService:)``. Empty for a layout
    /// built with `rememberingRules: false`: at 100k services these copies cost about 20 MB,
    /// and a caller that can re-derive a service's previous rules (the agent keeps the
    /// previous mirror state) hands them to ``replaceRules(_:with:)`` instead.
    public private(set) var services: [String: [ServicePortRule]] = [:]
    /// The policy rules in force, per policy (``PolicyPortRule/policy``), when the layout
    /// remembers rules (see MirrorTables+Policies.swift).
    public internal(set) var policies: [String: [PolicyPortRule]] = [:]
    /// Whether ``services`` is kept (``setRules(_:forService:)`` and ``set(_:for:)`` need it).
    public let remembersRules: Bool
    public private(set) var dnsAddresses: [IPAddress]
    /// Cluster DNS addresses the agent answers on only while its socket exists (transparent
    /// mode): NOTRACK for queries only when a local socket takes them, so with the agent gone
    /// they are tracked again and kube-proxy's DNAT sends them to the cluster DNS.
    public private(set) var interceptedDNS: [IPAddress]
    /// Users (service and policy ports) of each masqueraded target, per table.
    var masqueradeUsers: [TableID: UseCounts] = [:]
    /// Ports using each `balance-N` chain, per table: beyond the standing counts, the chain
    /// exists while N has users.
    private var balanceUsers: [TableID: [Int: Int]] = [:]
    /// Ports expected by a bulk build, for sizing a family's maps when it gets its first port
    /// (zero once used, or when not building in bulk).
    private var expectedPorts = 0

    /// An empty layout (no services) with NOTRACK for `dnsAddresses` and, while a socket
    /// takes them, for queries to `interceptedDNS`.
    public init(role: Role = .node, dnsAddresses: [IPAddress] = [], interceptedDNS: [IPAddress] = [], rememberingRules: Bool = true) {
        self.role = role
        self.dnsAddresses = dnsAddresses
        self.interceptedDNS = interceptedDNS
        remembersRules = rememberingRules
        desired = Ruleset(tables: role.tableIDs.map {
            Self.skeleton($0, dns: dnsAddresses, intercepted: interceptedDNS, allowedSources: role.allowedSources,
                          policies: role.trafficPolicies)
        })
    }

    /// A layout holding `rules`.
    public init(role: Role = .node, rules: [ServicePortRule], dnsAddresses: [IPAddress] = []) {
        var grouped: [String: [ServicePortRule]] = [:]
        for rule in rules { grouped[rule.service, default: []].append(rule) }
        self.init(role: role, services: grouped.values, expectedPorts: rules.count, dnsAddresses: dnsAddresses)
    }

    /// A layout holding every service's rules, built in one pass: `services` yields the rules
    /// of one service at a time (each array's rules share their ``ServicePortRule/service``),
    /// so a caller can translate lazily without materialising all rules first.
    /// - Parameters:
    ///   - expectedPorts: about how many rules there are, to size the maps once.
    ///   - rememberingRules: keep every service's rules (``services``) so that
    ///     ``setRules(_:forService:)`` can take them out again; without, each service must
    ///     appear once in `services`, and changes go through ``replaceRules(_:with:)``.
    public init(role: Role = .node, services: some Sequence<[ServicePortRule]>, expectedPorts: Int, dnsAddresses: [IPAddress] = [],
                interceptedDNS: [IPAddress] = [], rememberingRules: Bool = true) {
        self.init(role: role, dnsAddresses: dnsAddresses, interceptedDNS: interceptedDNS, rememberingRules: rememberingRules)
        if rememberingRules { self.services.reserveCapacity(expectedPorts) }
        self.expectedPorts = expectedPorts
        var scope = DiffScope()
        for rules in services {
            guard let service = rules.first?.service else { continue }
            if rememberingRules, let old = self.services.updateValue(rules, forKey: service) {
                for rule in old { apply(rule, adding: false, scope: &scope, track: false) }
            }
            for rule in rules { apply(rule, adding: true, scope: &scope, track: false) }
        }
        self.expectedPorts = 0
        // Storage grown by doubling may be half empty: give the slack back once.
        for id in role.tableIDs {
            for name in desired.tables[id]?.elements.keys ?? [:].keys { desired.tables[id]?.elements[name]?.trim() }
            masqueradeUsers[id]?.trim()
        }
    }

    /// Replaces the rules of `service` by `rules` (none: the service is gone), returning what
    /// changed for the diff.
    /// - Precondition: the layout remembers rules (``remembersRules``).
    @discardableResult
    public mutating func setRules(_ rules: [ServicePortRule], forService service: String) -> DiffScope {
        precondition(remembersRules, "setRules(_:forService:) needs a layout that remembers rules; use replaceRules(_:with:)")
        var scope = DiffScope()
        for rule in services.removeValue(forKey: service) ?? [] { apply(rule, adding: false, scope: &scope, track: true) }
        for rule in rules { apply(rule, adding: true, scope: &scope, track: true) }
        if !rules.isEmpty { services[service] = rules }
        return scope
    }

    /// Takes out `old` (the rules of one or more services exactly as they were last added)
    /// and puts in `new`, returning what changed for the diff. The caller vouches for `old`:
    /// rules that were never added would be taken out of the counts of shared objects.
    @discardableResult
    public mutating func replaceRules(_ old: [ServicePortRule], with new: [ServicePortRule]) -> DiffScope {
        var scope = DiffScope()
        for rule in old { apply(rule, adding: false, scope: &scope, track: true) }
        for rule in new { apply(rule, adding: true, scope: &scope, track: true) }
        if remembersRules {
            for service in Set(old.map(\.service)) { services[service] = nil }
            for rule in new { services[rule.service, default: []].append(rule) }
        }
        return scope
    }

    /// Replaces (or with nil removes) the one rule with `id` (``ServicePortRule/id``),
    /// keeping the other ports of its service; returns what changed for the diff.
    @discardableResult
    public mutating func set(_ rule: ServicePortRule?, for id: String) -> DiffScope {
        // `namespace/name/proto/port`: the service is what precedes the last two parts.
        let service = rule?.service ?? id.split(separator: "/", omittingEmptySubsequences: false).dropLast(2).joined(separator: "/")
        var rules = (services[service] ?? []).filter { $0.id != id }
        if let rule { rules.append(rule) }
        return setRules(rules, forService: service)
    }

    /// Changes the DNS listener addresses that get NOTRACK (and the intercepted ones).
    @discardableResult
    public mutating func setDNSAddresses(_ addresses: [IPAddress], intercepted: [IPAddress]? = nil) -> DiffScope {
        dnsAddresses = addresses
        if let intercepted { interceptedDNS = intercepted }
        var scope = DiffScope()
        for id in role.tableIDs {
            let fresh = Self.skeleton(id, dns: addresses, intercepted: interceptedDNS, allowedSources: role.allowedSources)
            for chain in ["raw-prerouting", "raw-output"] {
                scope.record(id, chain: chain, previous: desired.tables[id]?.rules[chain] ?? [])
                desired.tables[id]?.rules[chain] = fresh.rules[chain]
            }
        }
        return scope
    }

    /// Sizes the single-target maps of the first family that receives a port in a bulk build
    /// (most clusters are single-stack; the other family's maps grow as needed). The other
    /// maps are not sized: how many ports have several targets is not known up front, and an
    /// oversized dictionary of 100k-port scale costs megabytes for nothing.
    private mutating func sizeForBulk(_ table: inout Table) {
        guard expectedPorts > 0 else { return }
        for map in Self.dnatMaps { table.elements[map]?.reserveCapacity(expectedPorts / Self.dnatShards + 16) }
        expectedPorts = 0
    }

    /// Adds or removes everything `rule` contributes, in both tables.
    private mutating func apply(_ rule: ServicePortRule, adding: Bool, scope: inout DiffScope, track: Bool) {
        for family in Family.allCases {
            // Most rules are single-family: share their arrays instead of filtering copies.
            let vips = rule.addresses.allSatisfy { $0.family == family } ? rule.addresses : rule.addresses.filter { $0.family == family }
            guard !vips.isEmpty else { continue }
            let id = TableID(family: family, name: role.tableName)
            guard var table = desired.tables.removeValue(forKey: id) else { continue }
            defer { desired.tables[id] = table }
            if adding, expectedPorts > 0 { sizeForBulk(&table) }
            var targets = rule.targets.allSatisfy { $0.address.family == family } ? rule.targets : rule.targets.filter { $0.address.family == family }
            if targets.count > 1 { targets = Array(Set(targets)).sorted() }

            var set: String
            var data: ElementData?
            let singleTarget = targets.count == 1
            switch targets.count {
            case 0:
                set = Self.rejectSet
            case 1:
                set = Self.dnatMaps[0] // per address below
                data = .values([.address(targets[0].address), .port(targets[0].port)])
            default:
                set = Self.chainMap
                let chain = Self.balanceChain(targets.count)
                data = .verdict(.goto(chain))
                // Standing chains (2…16) always exist: only larger counts are tallied.
                if !Self.standingBalanceCounts.contains(targets.count) {
                    let before = balanceUsers[id]?[targets.count] ?? 0
                    let users = before + (adding ? 1 : -1)
                    balanceUsers[id, default: [:]][targets.count] = users > 0 ? users : nil
                    if (before == 0) != (users == 0) {
                        if track {
                            scope.record(id, chain: chain, previous: table.chains[chain] == nil ? nil : (table.rules[chain] ?? []))
                        }
                        if users > 0 {
                            table.add(Chain(name: chain), rules: [Self.balanceRule(count: targets.count, family: family)])
                        } else {
                            table.removeChain(chain)
                        }
                    }
                }
            }
            for vip in vips {
                let key: ValueList = [.address(vip), .proto(rule.proto), .port(rule.port)]
                if singleTarget { set = Self.dnatMap(for: vip) }
                if track { scope.record(id, set: set, key: key, previous: table.elements[set]?[key]) }
                if adding {
                    table.elements[set, default: [:]][key] = Element(key: key, data: data, comment: rule.service)
                } else {
                    table.elements[set]?[key] = nil
                }
                if role.allowedSources != nil {
                    if track { scope.record(id, set: Self.guardedPortsSet, key: key, previous: table.elements[Self.guardedPortsSet]?[key]) }
                    // No comment: its counts are refused packets, not the service's traffic.
                    table.elements[Self.guardedPortsSet, default: [:]][key] = adding ? Element(key: key) : nil
                }
                guard targets.count > 1 else { continue }
                for (index, target) in targets.enumerated() {
                    let slot: ValueList = [.address(vip), .proto(rule.proto), .port(rule.port), .number(UInt32(index))]
                    if track { scope.record(id, set: Self.balanceMap, key: slot, previous: table.elements[Self.balanceMap]?[slot]) }
                    if adding {
                        table.elements[Self.balanceMap, default: [:]][slot] =
                            Element(key: slot, data: .values([.address(target.address), .port(target.port)]))
                    } else {
                        table.elements[Self.balanceMap]?[slot] = nil
                    }
                }
            }
            // Targets shared by many services (a gateway) are counted; the set changes only when
            // the first user appears or the last one goes.
            for target in targets where target.masquerade {
                let key: ValueList = [.address(target.address), .proto(rule.proto), .port(target.port)]
                let (before, users) = masqueradeUsers[id, default: UseCounts()].add(adding ? 1 : -1, to: key)
                guard (before == 0) != (users == 0) else { continue }
                if track { scope.record(id, set: Self.masqueradeSet, key: key, previous: table.elements[Self.masqueradeSet]?[key]) }
                if users > 0 {
                    table.elements[Self.masqueradeSet, default: [:]][key] = Element(key: key)
                } else {
                    table.elements[Self.masqueradeSet]?[key] = nil
                }
            }
        }
    }

    /// The one rule of `balance-<count>`: target k of the port, k drawn uniformly.
    static func balanceRule(count: Int, family: Family) -> Rule {
        Rule(family: family, [.slotBalanceMap(set: balanceMap, modulus: UInt32(count))], comment: "\(count) targets")
    }

    /// The fixed part of a table: sets, base chains and their rules (with `policies`, those of
    /// traffic policies too).
    static func skeleton(_ id: TableID, dns: [IPAddress], intercepted: [IPAddress] = [], allowedSources: [IPPrefix]?,
                         policies: Bool = false) -> Table {
        let family = id.family
        let slot: [DataType] = [family.addressType, .inetProto, .inetService]
        var table = Table(id: id)
        for map in dnatMaps {
            table.add(NFTSet(name: map, keyTypes: slot, dataTypes: [family.addressType, .inetService], counter: true))
        }
        table.add(NFTSet(name: chainMap, keyTypes: slot, dataTypes: [.verdict], counter: true))
        table.add(NFTSet(name: rejectSet, keyTypes: slot, counter: true))
        table.add(NFTSet(name: masqueradeSet, keyTypes: slot))
        table.add(NFTSet(name: balanceMap, keyTypes: slot + [.integer], dataTypes: [family.addressType, .inetService]))

        let nat: [Rule] = dnatMaps.enumerated().map { shard, map in
            Rule(family: family, [.addressLowBits(mask: UInt8(dnatShards - 1), equals: UInt8(shard)), .slotDNATMap(set: map)],
                 comment: "single-target services")
        } + [Rule(family: family, [.slotVerdictMap(set: chainMap)], comment: "multi-target services")]
            + (policies ? [policyRule(family: family)] : [])
        let reject: [Rule] = [
            Rule(family: family, [.l4proto(6), .slotLookup(set: rejectSet), .rejectWithTCPReset], comment: "no live target"),
            Rule(family: family, [.slotLookup(set: rejectSet), .rejectPortUnreachable], comment: "no live target"),
        ]
        let masquerade = [Rule(family: family, [.ctStatusDNAT, .slotLookup(set: masqueradeSet), .masquerade], comment: "masqueraded clusters")]
        var notrack: [Rule] = []
        for address in dns where address.family == family {
            for proto: UInt8 in [17, 6] {
                notrack.append(Rule(family: family, [.address(.destination, address), .l4proto(proto), .port(.destination, 53), .notrack], comment: "dns"))
                notrack.append(Rule(family: family, [.address(.source, address), .l4proto(proto), .port(.source, 53), .notrack], comment: "dns"))
            }
        }
        table.add(Chain(name: "nat-prerouting", base: BaseChain(kind: .nat, hook: .prerouting, priority: priority)), rules: nat)
        table.add(Chain(name: "nat-output", base: BaseChain(kind: .nat, hook: .output, priority: priority)), rules: nat)
        table.add(Chain(name: "nat-postrouting", base: BaseChain(kind: .nat, hook: .postrouting, priority: 100)), rules: masquerade)
        table.add(Chain(name: "filter-prerouting", base: BaseChain(kind: .filter, hook: .prerouting, priority: priority)), rules: reject)
        table.add(Chain(name: "filter-output", base: BaseChain(kind: .filter, hook: .output, priority: priority)), rules: reject)
        // Intercepted cluster DNS: queries arriving for it are untracked (so kube-proxy's DNAT,
        // which needs conntrack, skips them) only while a local socket takes them; replies
        // from the agent are untracked always. Queries from this host itself are left alone:
        // in the output hook the socket found would be the sender's own.
        var interceptIn: [Rule] = []
        var interceptOut: [Rule] = []
        for address in intercepted where address.family == family {
            for proto: UInt8 in [17, 6] {
                interceptIn.append(Rule(family: family, [.address(.destination, address), .l4proto(proto), .port(.destination, 53), .socketPresent, .notrack],
                                        comment: "cluster dns, while the agent listens"))
                interceptOut.append(Rule(family: family, [.address(.source, address), .l4proto(proto), .port(.source, 53), .notrack],
                                         comment: "cluster dns replies"))
            }
        }
        table.add(Chain(name: "raw-prerouting", base: BaseChain(kind: .filter, hook: .prerouting, priority: -300)), rules: notrack + interceptIn)
        table.add(Chain(name: "raw-output", base: BaseChain(kind: .filter, hook: .output, priority: -300)), rules: notrack + interceptOut)
        for count in standingBalanceCounts {
            table.add(Chain(name: balanceChain(count)), rules: [balanceRule(count: count, family: family)])
        }
        if policies { addPolicySkeleton(to: &table) }
        if let allowedSources {
            table.add(NFTSet(name: guardedPortsSet, keyTypes: slot, counter: true))
            let allowed = allowedSources.filter { $0.family == family }.map {
                Rule(family: family, [.sourcePrefix($0), .accept], comment: "allowed source")
            }
            let refused = Rule(family: family, [.slotLookup(set: guardedPortsSet), .drop], comment: "source not allowed")
            table.add(Chain(name: "filter-sources", base: BaseChain(kind: .filter, hook: .prerouting, priority: sourceFilterPriority)),
                      rules: allowed + [refused])
        }
        return table
    }
}

/// How many users each key has, stored like set elements (a packed key and a one-word count):
/// a third of the memory of a `[ValueList: Int]`, which at 25k shared targets (pod IPs of
/// multi-target services) held 3 MB.
struct UseCounts: Sendable {
    private var counts = ElementSet()

    /// Adds `delta` to the users of `key` (never below zero), returning the counts before and
    /// after.
    mutating func add(_ delta: Int, to key: ValueList) -> (before: Int, after: Int) {
        counts.adjustCount(key, by: delta)
    }

    /// Gives back room grown beyond the current count.
    mutating func trim() { counts.trim() }
}
