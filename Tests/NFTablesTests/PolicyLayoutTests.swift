import Testing
@testable import NFTables

/// Traffic policies in the layout, without a kernel: how weights become slots (exact, or
/// rounded to thousandths), what the tables hold, and that changes are element-only.
struct PolicyLayoutTests {
    static func ip(_ text: String) -> IPAddress { IPAddress(text)! }

    static func gateway(_ addresses: [String], port: UInt16 = 4143, masquerade: Bool = true) -> [ServicePortRule.Target] {
        addresses.map { ServicePortRule.Target(address: ip($0), port: port, masquerade: masquerade) }
    }

    static func rule(local: Int, mirrors: [(String, Int, [ServicePortRule.Target])], vips: [String] = ["10.96.0.50"]) -> PolicyPortRule {
        PolicyPortRule(policy: "default/web", proto: 6, port: 80, addresses: vips.map(ip),
                       backends: [.local(weight: local)] + mirrors.map { .mirror($0.0, weight: $0.1, targets: $0.2) })
    }

    static let v4 = TableID(family: .ip, name: MirrorTables.tableName)

    @Test func exactSlotsWhenTheCountIsStanding() {
        let ninety = Self.rule(local: 90, mirrors: [("web-paris", 10, Self.gateway(["10.99.1.2"]))]).slots(for: .ip)
        #expect(ninety.count == 10 && ninety.remote.count == 1 && ninety.local == 9 && ninety.exact)
        #expect(ninety.remote[0].backend == "web-paris" && ninety.remote[0].target.address == Self.ip("10.99.1.2"))

        // Two gateway addresses: each gets half the mirror's share.
        let two = Self.rule(local: 90, mirrors: [("web-paris", 10, Self.gateway(["10.99.1.3", "10.99.1.2"]))]).slots(for: .ip)
        #expect(two.count == 20 && two.local == 18 && two.exact)
        #expect(two.remote.map(\.target.address) == [Self.ip("10.99.1.2"), Self.ip("10.99.1.3")], "targets in address order")

        // Everything remote over three targets: 3 slots, one each.
        let failover = Self.rule(local: 0, mirrors: [("web-paris", 1, Self.gateway(["10.99.1.2", "10.99.1.3", "10.99.1.4"]))]).slots(for: .ip)
        #expect(failover.count == 3 && failover.local == 0 && Set(failover.remote.map(\.target)).count == 3)

        // Two mirrors and local, 50/30/20.
        let three = Self.rule(local: 50, mirrors: [("web-paris", 30, Self.gateway(["10.99.1.2"])),
                                                   ("web-berlin", 20, Self.gateway(["10.99.2.2"]))]).slots(for: .ip)
        #expect(three.count == 10 && three.slotsByBackend == ["local": 5, "web-paris": 3, "web-berlin": 2])
        #expect(three.remote.prefix(3).allSatisfy { $0.backend == "web-paris" }, "remote slots first, in backend order")
    }

    @Test func nothingLiveIsAllLocal() {
        for rule in [Self.rule(local: 90, mirrors: [("web-paris", 10, [])]),
                     Self.rule(local: 0, mirrors: [("web-paris", 0, Self.gateway(["10.99.1.2"]))]),
                     Self.rule(local: 0, mirrors: [("web-paris", 10, [])]),
                     Self.rule(local: 5, mirrors: [])] {
            let slots = rule.slots(for: .ip)
            #expect(slots.count == 1 && slots.remote.isEmpty && slots.local == 1, "\(rule.backends)")
        }
        // A mirror with targets of the other family only has none for this ClusterIP.
        let v6only = Self.rule(local: 90, mirrors: [("web-paris", 10, Self.gateway(["fd00:99::2"]))], vips: ["10.96.0.50", "fd00:96::50"])
        #expect(v6only.slots(for: .ip).remote.isEmpty)
        #expect(v6only.slots(for: .ip6).count == 10 && v6only.slots(for: .ip6).remote.count == 1)
    }

    @Test func otherCountsAreRoundedToThousandths() {
        // 90/10 over three gateway addresses: exactly 30 slots, not a standing count.
        let three = Self.rule(local: 90, mirrors: [("web-paris", 10, Self.gateway(["10.99.1.2", "10.99.1.3", "10.99.1.4"]))]).slots(for: .ip)
        #expect(three.count == 1000 && !three.exact)
        #expect(three.slotsByBackend == ["local": 900, "web-paris": 100], "the backends' shares stay exact")
        let perTarget = Dictionary(grouping: three.remote, by: \.target.address).mapValues(\.count)
        #expect(perTarget.values.sorted() == [33, 33, 34], "evenly over the targets, the first one gets the extra: \(perTarget)")
        #expect(perTarget[Self.ip("10.99.1.2")] == 34)

        // 1 : 2 : 14 — seventeenths are rounded per backend by largest remainder (7 would be exact).
        let odd = Self.rule(local: 1, mirrors: [("a-paris", 2, Self.gateway(["10.99.1.2"])), ("b-berlin", 14, Self.gateway(["10.99.2.2"]))]).slots(for: .ip)
        #expect(odd.count == 1000 && odd.slotsByBackend == ["local": 59, "a-paris": 118, "b-berlin": 823])
        let sevenths = Self.rule(local: 1, mirrors: [("a-paris", 2, Self.gateway(["10.99.1.2"])), ("b-berlin", 4, Self.gateway(["10.99.2.2"]))]).slots(for: .ip)
        #expect(sevenths.count == 7 && sevenths.exact)

        // A tiny share keeps at least one thousandth.
        let tiny = Self.rule(local: 1000, mirrors: [("web-paris", 1, Self.gateway(["10.99.1.2"])), ("web-berlin", 1, Self.gateway(["10.99.2.2"]))]).slots(for: .ip)
        #expect(tiny.slotsByBackend["web-paris"] == 1 && tiny.slotsByBackend["web-berlin"] == 1 && tiny.count == 1000)

        // Every count there is has its standing chain, and none exceeds the bound.
        for local in [0, 1, 7, 333, 999] {
            for targets in 1 ... 23 {
                let addresses = (1 ... targets).map { "10.99.3.\($0)" }
                let slots = Self.rule(local: local, mirrors: [("web-paris", 1000 - local, Self.gateway(addresses))]).slots(for: .ip)
                #expect(MirrorTables.policySlotCounts.contains(slots.count) && slots.count <= PolicySlots.bound, "\(local) \(targets): \(slots.count)")
                #expect(slots.remote.count <= slots.count)
            }
        }
    }

    @Test func tablesHoldThePortItsSlotsAndItsLocalCounter() throws {
        var layout = MirrorTables()
        layout.setPolicyRules([Self.rule(local: 90, mirrors: [("web-paris", 10, Self.gateway(["10.99.1.2"]))])], forPolicy: "default/web")
        let table = try #require(layout.desired[Self.v4])
        let key: ValueList = [.address(Self.ip("10.96.0.50")), .proto(6), .port(80)]
        #expect(table.elements[MirrorTables.policyPortsMap]?[key]?.data == .verdict(.goto("policy-10")))
        #expect(table.elements[MirrorTables.policyLocalSet]?[key]?.comment == "policy default/web tcp/80 local")
        let slot: ValueList = [.address(Self.ip("10.96.0.50")), .proto(6), .port(80), .number(0)]
        #expect(table.elements[MirrorTables.policySlotsMap]?[slot]?.data == .values([.address(Self.ip("10.99.1.2")), .port(4143)]))
        #expect(table.elements[MirrorTables.policySlotsMap]?[slot]?.comment == "policy default/web tcp/80 web-paris")
        #expect(table.elements[MirrorTables.policySlotsMap]?.count == 1)
        #expect(table.elements[MirrorTables.masqueradeSet]?.count == 1)
        #expect(PolicyPortRule.counterLabel("policy default/web tcp/80 web-paris")! == ("default/web", "tcp/80", "web-paris"))
        #expect(PolicyPortRule.counterLabel("default/web-paris") == nil)
        #expect(MirrorTables.policySlotCounts.count == 26)
        #expect(table.rules["nat-prerouting"]?.last?.text.hasPrefix("ip daddr . meta l4proto . th dport vmap @policy-ports") == true)
        #expect(table.rules["policy-10"]?.map(\.expressions) == [[.slotBalanceMap(set: "policy-slots", modulus: 10)], [.slotLookup(set: "policy-local")]])

        // Gateways have no policy maps and ignore policies.
        var gateway = MirrorTables(role: .gateway(allowedSources: []))
        gateway.setPolicyRules([Self.rule(local: 1, mirrors: [])], forPolicy: "default/web")
        #expect(gateway.desired[TableID(family: .ip, name: "mirror-gateway")]?.sets[MirrorTables.policyPortsMap] == nil)
    }

    @Test func weightsTargetsAndRemovalAreElementOnly() throws {
        let fake = FakeRulesetBackend()
        let reconciler = Reconciler(backend: fake, tables: MirrorTables.tableIDs)
        var layout = MirrorTables()
        let paris = Self.gateway(["10.99.1.2"])
        // A service shares the masqueraded gateway target.
        layout.setRules([ServicePortRule(service: "default/bar-paris", proto: 6, port: 80, addresses: [Self.ip("10.112.0.10")], targets: paris)],
                        forService: "default/bar-paris")
        try reconciler.reconcile(layout.desired)

        func change(_ rule: PolicyPortRule?) throws -> TransactionSummary {
            let scope = layout.setPolicyRules(rule.map { [$0] } ?? [], forPolicy: "default/web")
            let sent = try reconciler.update(layout.desired, scope: scope)
            expectSame(fake.ruleset, layout.desired)
            let summary = sent.summary
            #expect(summary.chainsAdded == 0 && summary.chainsFlushed == 0 && summary.chainsDeleted == 0 && summary.rulesAdded == 0
                && summary.setsAdded == 0 && summary.tablesAdded == 0, "element-only: \(sent)")
            return summary
        }
        var summary = try change(Self.rule(local: 90, mirrors: [("web-paris", 10, paris)]))
        #expect(summary.elementsAdded == 3 && summary.elementsDeleted == 0, "port, local counter, one slot (masquerade shared): \(summary)")

        // 90/10 -> 80/20: policy-10 -> policy-5, slot 0 unchanged.
        summary = try change(Self.rule(local: 80, mirrors: [("web-paris", 20, paris)]))
        #expect(summary.elementsAdded == 1 && summary.elementsDeleted == 1, "only the port's verdict: \(summary)")

        // A second gateway address (readiness): 8/1/1 -> 10 slots, slot 1 added, and its masquerade target.
        summary = try change(Self.rule(local: 80, mirrors: [("web-paris", 20, Self.gateway(["10.99.1.2", "10.99.1.3"]))]))
        #expect(summary.elementsAdded == 3 && summary.elementsDeleted == 1, "\(summary)")

        // Local 0: everything remote; then the mirror dead: everything local.
        _ = try change(Self.rule(local: 0, mirrors: [("web-paris", 20, Self.gateway(["10.99.1.2", "10.99.1.3"]))]))
        _ = try change(Self.rule(local: 0, mirrors: [("web-paris", 20, [])]))
        #expect(layout.desired[Self.v4]?.elements[MirrorTables.policySlotsMap]?.isEmpty == true)

        // Removed: nothing of it is left but the service's masquerade target.
        summary = try change(nil)
        let table = try #require(layout.desired[Self.v4])
        #expect(table.elements[MirrorTables.policyPortsMap]?.isEmpty == true && table.elements[MirrorTables.policyLocalSet]?.isEmpty == true)
        #expect(table.elements[MirrorTables.masqueradeSet]?.count == 1)
        #expect(try reconciler.reconcile(layout.desired).isEmpty)
    }

    @Test func aSlotThatChangesBackendDoesNotCarryItsCounter() throws {
        let fake = FakeRulesetBackend()
        let reconciler = Reconciler(backend: fake, tables: MirrorTables.tableIDs)
        var layout = MirrorTables()
        layout.setPolicyRules([Self.rule(local: 1, mirrors: [("web-paris", 1, Self.gateway(["10.99.1.2"]))])], forPolicy: "default/web")
        try reconciler.reconcile(layout.desired)
        // Same key (slot 0), another backend: not carried. Same backend, another target: carried.
        var scope = layout.setPolicyRules([Self.rule(local: 1, mirrors: [("web-berlin", 1, Self.gateway(["10.99.2.2"]))])], forPolicy: "default/web")
        var sent = try reconciler.update(layout.desired, scope: scope)
        #expect(sent.replacements(countedIn: layout.desired).isEmpty, "\(sent)")
        scope = layout.setPolicyRules([Self.rule(local: 1, mirrors: [("web-berlin", 1, Self.gateway(["10.99.2.3"]))])], forPolicy: "default/web")
        sent = try reconciler.update(layout.desired, scope: scope)
        #expect(sent.replacements(countedIn: layout.desired).count == 1, "\(sent)")
    }
}
