/// The agent's nftables layout, built from ``ServicePortRule``s (DESIGN.md "nftables layout").
///
/// Per family, one table `mirror-agent` holding:
/// - `service-dnat`: map `daddr . l4proto . dport : addr . port` for single-target ports;
/// - `service-chains`: verdict map to a per-port chain `svc/<ns>/<name>/<proto>/<port>` that
///   picks one of several targets with `numgen random` (uniform: rule i matches with
///   probability 1/(N-i), so every target gets 1/N);
/// - `rejected-services`: ports with no live target, rejected in filter chains at prerouting
///   and output (TCP reset, else ICMP port unreachable);
/// - `masquerade-targets`: targets in clusters marked `masquerade`, masqueraded at postrouting
///   when the connection was DNATed;
/// - nat chains at prerouting and output at priority -101 (just before `dstnat`, so kube-proxy
///   never sees mirrored ClusterIPs), and raw-priority chains with NOTRACK for the DNS address.
/// The three lookup sets carry per-element counters, and every element's comment names its
/// service. Updates are incremental: ``set(_:for:)`` changes one port and returns the diff
/// scope it touched.
public struct MirrorTables: Sendable {
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
    public static let rejectSet = "rejected-services"
    public static let masqueradeSet = "masquerade-targets"
    /// Priority of the nat and filter chains: `dstnat - 1`.
    public static let priority: Int32 = -101

    /// The tables the agent owns.
    public static let tableIDs = Family.allCases.map { TableID(family: $0, name: tableName) }

    public private(set) var desired: Ruleset
    public private(set) var rules: [String: ServicePortRule] = [:]
    public private(set) var dnsAddresses: [IPAddress]
    private var masqueradeUsers: [TableID: [ValueList: Int]] = [:]

    /// An empty layout (no services) with NOTRACK for `dnsAddresses`.
    public init(dnsAddresses: [IPAddress] = []) {
        self.dnsAddresses = dnsAddresses
        desired = Ruleset(tables: Self.tableIDs.map { Self.skeleton($0, dns: dnsAddresses) })
    }

    /// A layout holding `rules`.
    public init(rules: [ServicePortRule], dnsAddresses: [IPAddress] = []) {
        self.init(dnsAddresses: dnsAddresses)
        self.rules.reserveCapacity(rules.count)
        for id in Self.tableIDs {
            for map in Self.dnatMaps { desired.tables[id]?.elements[map]?.reserveCapacity(rules.count / Self.dnatShards + 16) }
        }
        for rule in rules { _ = set(rule, for: rule.id, trackScope: false) }
    }

    /// Replaces (or with nil removes) the rule with `id`, returning what changed for the diff.
    @discardableResult
    public mutating func set(_ rule: ServicePortRule?, for id: String) -> DiffScope {
        set(rule, for: id, trackScope: true)
    }

    /// Changes the DNS listener addresses that get NOTRACK.
    @discardableResult
    public mutating func setDNSAddresses(_ addresses: [IPAddress]) -> DiffScope {
        dnsAddresses = addresses
        var scope = DiffScope()
        for id in Self.tableIDs {
            let fresh = Self.skeleton(id, dns: addresses)
            for chain in ["raw-prerouting", "raw-output"] {
                scope.record(id, chain: chain, previous: desired.tables[id]?.rules[chain] ?? [])
                desired.tables[id]?.rules[chain] = fresh.rules[chain]
            }
        }
        return scope
    }

    private mutating func set(_ rule: ServicePortRule?, for id: String, trackScope: Bool) -> DiffScope {
        var scope = DiffScope()
        if let old = rules.removeValue(forKey: id) { apply(old, adding: false, scope: &scope, track: trackScope) }
        if let rule {
            rules[id] = rule
            apply(rule, adding: true, scope: &scope, track: trackScope)
        }
        return scope
    }

    /// Adds or removes everything `rule` contributes, in both tables.
    private mutating func apply(_ rule: ServicePortRule, adding: Bool, scope: inout DiffScope, track: Bool) {
        for family in Family.allCases {
            let vips = rule.addresses.filter { $0.family == family }
            guard !vips.isEmpty else { continue }
            let id = TableID(family: family, name: Self.tableName)
            guard var table = desired.tables.removeValue(forKey: id) else { continue }
            defer { desired.tables[id] = table }
            var targets = rule.targets.filter { $0.address.family == family }
            if targets.count > 1 { targets = Array(Set(targets)).sorted() }
            let keys = vips.map { ValueList([Value.address($0), .proto(rule.proto), .port(rule.port)]) }

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
                data = .verdict(.goto(rule.chainName))
                if track {
                    scope.record(id, chain: rule.chainName, previous: table.chains[rule.chainName] == nil ? nil : (table.rules[rule.chainName] ?? []))
                }
                if adding {
                    table.add(Chain(name: rule.chainName), rules: Self.balancingRules(rule, targets: targets, family: family))
                } else {
                    table.removeChain(rule.chainName)
                }
            }
            for (vip, key) in zip(vips, keys) {
                if singleTarget { set = Self.dnatMap(for: vip) }
                if track { scope.record(id, set: set, key: key, previous: table.elements[set]?[key]) }
                if adding {
                    table.elements[set, default: [:]][key] = Element(key: key, data: data, comment: rule.service)
                } else {
                    table.elements[set]?[key] = nil
                }
            }
            // Targets shared by many services (a gateway) are counted; the set changes only when
            // the first user appears or the last one goes.
            for target in targets where target.masquerade {
                let key: ValueList = [.address(target.address), .proto(rule.proto), .port(target.port)]
                let before = masqueradeUsers[id]?[key] ?? 0
                let users = before + (adding ? 1 : -1)
                masqueradeUsers[id, default: [:]][key] = users > 0 ? users : nil
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

    /// Rule i matches with probability 1/(N-i); the last one always: a uniform choice.
    static func balancingRules(_ rule: ServicePortRule, targets: [ServicePortRule.Target], family: Family) -> [Rule] {
        targets.enumerated().map { index, target in
            var expressions: [Expression] = [.l4proto(rule.proto)]
            let remaining = targets.count - index
            if remaining > 1 { expressions.append(.numgen(modulus: UInt32(remaining), equals: 0)) }
            expressions.append(.dnat(target.address, target.port))
            let shown = family == .ip ? "\(target.address):\(target.port)" : "[\(target.address)]:\(target.port)"
            return Rule(family: family, expressions, comment: "\(rule.service) \(index + 1)/\(targets.count) \(shown)")
        }
    }

    /// The fixed part of a table: sets, base chains and their rules.
    static func skeleton(_ id: TableID, dns: [IPAddress]) -> Table {
        let family = id.family
        let slot: [DataType] = [family.addressType, .inetProto, .inetService]
        var table = Table(id: id)
        for map in dnatMaps {
            table.add(NFTSet(name: map, keyTypes: slot, dataTypes: [family.addressType, .inetService], counter: true))
        }
        table.add(NFTSet(name: chainMap, keyTypes: slot, dataTypes: [.verdict], counter: true))
        table.add(NFTSet(name: rejectSet, keyTypes: slot, counter: true))
        table.add(NFTSet(name: masqueradeSet, keyTypes: slot))

        let nat: [Rule] = dnatMaps.enumerated().map { shard, map in
            Rule(family: family, [.addressLowBits(mask: UInt8(dnatShards - 1), equals: UInt8(shard)), .slotDNATMap(set: map)],
                 comment: "single-target services")
        } + [Rule(family: family, [.slotVerdictMap(set: chainMap)], comment: "multi-target services")]
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
        table.add(Chain(name: "raw-prerouting", base: BaseChain(kind: .filter, hook: .prerouting, priority: -300)), rules: notrack)
        table.add(Chain(name: "raw-output", base: BaseChain(kind: .filter, hook: .output, priority: -300)), rules: notrack)
        return table
    }
}
