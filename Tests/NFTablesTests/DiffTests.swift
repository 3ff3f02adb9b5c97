import Testing
@testable import NFTables

/// The diff and reconciler against the in-memory fake: minimal batches, no kernel needed.
struct DiffTests {
    static func ip(_ text: String) -> IPAddress { IPAddress(text)! }

    static func gatewayRule(_ name: String, vip: String, gateways: [String], masquerade: Bool = true) -> ServicePortRule {
        ServicePortRule(service: "default/\(name)", proto: 6, port: 80, addresses: [ip(vip)],
                        targets: gateways.map { .init(address: ip($0), port: 4143, masquerade: masquerade) })
    }

    @Test func createsEverythingThenNothing() throws {
        let fake = FakeRulesetBackend()
        let reconciler = Reconciler(backend: fake, tables: MirrorTables.tableIDs)
        let layout = MirrorTables(rules: [Self.gatewayRule("bar-paris", vip: "10.112.0.10", gateways: ["10.99.1.2"])])
        let first = try reconciler.reconcile(layout.desired)
        #expect(first.summary.tablesAdded == 2)
        #expect(first.summary.elementsAdded == 2) // the dnat element and the masquerade target
        expectSame(fake.ruleset, layout.desired)
        #expect(try reconciler.reconcile(layout.desired).isEmpty)
    }

    @Test func oneServiceAddedOrRemovedIsOneElement() throws {
        let fake = FakeRulesetBackend()
        let reconciler = Reconciler(backend: fake, tables: MirrorTables.tableIDs)
        var layout = MirrorTables(rules: [Self.gatewayRule("bar-paris", vip: "10.112.0.10", gateways: ["10.99.1.2"])])
        try reconciler.reconcile(layout.desired)

        let added = Self.gatewayRule("qux-paris", vip: "10.112.0.20", gateways: ["10.99.1.2"])
        var scope = layout.set(added, for: added.id)
        var sent = try reconciler.update(layout.desired, scope: scope)
        #expect(sent.summary == { var s = TransactionSummary(); s.elementsAdded = 1; return s }(), "\(sent)")

        scope = layout.set(nil, for: added.id)
        sent = try reconciler.update(layout.desired, scope: scope)
        #expect(sent.summary == { var s = TransactionSummary(); s.elementsDeleted = 1; return s }(), "\(sent)")
        expectSame(fake.ruleset, layout.desired)
    }

    @Test func singleToMultiTargetMovesToTheBalanceMap() throws {
        let fake = FakeRulesetBackend()
        let reconciler = Reconciler(backend: fake, tables: MirrorTables.tableIDs)
        var layout = MirrorTables(rules: [Self.gatewayRule("bar-paris", vip: "10.112.0.10", gateways: ["10.99.1.2"])])
        try reconciler.reconcile(layout.desired)
        let two = Self.gatewayRule("bar-paris", vip: "10.112.0.10", gateways: ["10.99.1.2", "10.99.1.3"])
        let scope = layout.set(two, for: two.id)
        let sent = try reconciler.update(layout.desired, scope: scope)
        let summary = sent.summary
        #expect(summary.chainsAdded == 0 && summary.rulesAdded == 0, "balance-2 is always there: \(sent)")
        // dnat out; vmap element, two balance-targets elements and the new masquerade target in
        #expect(summary.elementsDeleted == 1 && summary.elementsAdded == 4, "\(sent)")
        expectSame(fake.ruleset, layout.desired)

        // And back: elements only again.
        let one = Self.gatewayRule("bar-paris", vip: "10.112.0.10", gateways: ["10.99.1.3"])
        let backScope = layout.set(one, for: one.id)
        let back = try reconciler.update(layout.desired, scope: backScope)
        #expect(back.summary.chainsDeleted == 0 && back.summary.chainsAdded == 0, "\(back)")
        expectSame(fake.ruleset, layout.desired)

        // Beyond the standing counts a chain comes with its first user and goes with its last.
        let many = Self.gatewayRule("bar-paris", vip: "10.112.0.10", gateways: (1 ... 17).map { "10.99.2.\($0)" })
        let manyScope = layout.set(many, for: many.id)
        let wide = try reconciler.update(layout.desired, scope: manyScope)
        #expect(wide.summary.chainsAdded == 1 && wide.summary.rulesAdded == 1, "balance-17 created: \(wide)")
        expectSame(fake.ruleset, layout.desired)
        let narrowScope = layout.set(one, for: one.id)
        let narrow = try reconciler.update(layout.desired, scope: narrowScope)
        #expect(narrow.summary.chainsDeleted == 1, "balance-17 deleted with its last user: \(narrow)")
        expectSame(fake.ruleset, layout.desired)
    }

    @Test func noTargetIsRejectedAndSharedMasqueradeTargetsAreCounted() throws {
        var layout = MirrorTables(rules: [
            Self.gatewayRule("a-paris", vip: "10.112.0.1", gateways: ["10.99.1.2"]),
            Self.gatewayRule("b-paris", vip: "10.112.0.2", gateways: ["10.99.1.2"]),
        ])
        let v4 = MirrorTables.tableIDs[0]
        #expect(layout.desired[v4]?.elements[MirrorTables.masqueradeSet]?.count == 1)
        layout.set(Self.gatewayRule("a-paris", vip: "10.112.0.1", gateways: []), for: "default/a-paris/tcp/80")
        #expect(layout.desired[v4]?.elements[MirrorTables.rejectSet]?.count == 1)
        #expect(layout.desired[v4]?.elements[MirrorTables.masqueradeSet]?.count == 1, "still used by b")
        layout.set(nil, for: "default/b-paris/tcp/80")
        #expect(layout.desired[v4]?.elements[MirrorTables.masqueradeSet]?.isEmpty == true)
    }

    @Test func changingATargetOfAMultiTargetPortTouchesOnlyElements() throws {
        let fake = FakeRulesetBackend()
        let reconciler = Reconciler(backend: fake, tables: MirrorTables.tableIDs)
        let three = Self.gatewayRule("bar-paris", vip: "10.112.0.10", gateways: ["10.99.1.2", "10.99.1.3", "10.99.1.4"], masquerade: false)
        var layout = MirrorTables(rules: [three, Self.gatewayRule("qux-paris", vip: "10.112.0.20", gateways: ["10.99.1.2", "10.99.1.3"], masquerade: false)])
        try reconciler.reconcile(layout.desired)
        // One target replaced: one balance element changes, nothing else.
        let replaced = Self.gatewayRule("bar-paris", vip: "10.112.0.10", gateways: ["10.99.1.2", "10.99.1.3", "10.99.1.9"], masquerade: false)
        var scope = layout.set(replaced, for: replaced.id)
        var sent = try reconciler.update(layout.desired, scope: scope)
        #expect(sent.summary == .counts(elementsAdded: 1, elementsDeleted: 1), "\(sent)")
        // One target gone (3 -> 2): the vmap element now points at balance-2; no chain changes.
        let two = Self.gatewayRule("bar-paris", vip: "10.112.0.10", gateways: ["10.99.1.2", "10.99.1.3"], masquerade: false)
        scope = layout.set(two, for: two.id)
        sent = try reconciler.update(layout.desired, scope: scope)
        #expect(sent.summary == .counts(elementsAdded: 1, elementsDeleted: 2), "\(sent)")
        expectSame(fake.ruleset, layout.desired)
    }

    @Test func markerSkipsTheReadOnRestartUntilSomethingDiffers() throws {
        let fake = FakeRulesetBackend()
        var layout = MirrorTables(rules: [Self.gatewayRule("bar-paris", vip: "10.112.0.10", gateways: ["10.99.1.2", "10.99.1.3"])])
        let first = Reconciler(backend: fake, tables: MirrorTables.tableIDs)
        try first.reconcile(layout.desired)
        #expect(fake.marker?.generation == fake.generation)
        #expect(!first.lastReconcileUsedMarker, "nothing to trust on an empty kernel")

        // A restart with the same desired ruleset: settled by the marker, nothing sent.
        let second = Reconciler(backend: fake, tables: MirrorTables.tableIDs)
        #expect(try second.reconcile(layout.desired).isEmpty)
        #expect(second.lastReconcileUsedMarker)

        // An incremental update carries a fresh marker, so the next restart trusts it too.
        let added = Self.gatewayRule("qux-paris", vip: "10.112.0.20", gateways: ["10.99.1.2"])
        let scope = layout.set(added, for: added.id)
        try second.update(layout.desired, scope: scope)
        #expect(fake.marker?.generation == fake.generation)
        let third = Reconciler(backend: fake, tables: MirrorTables.tableIDs)
        #expect(try third.reconcile(layout.desired).isEmpty)
        #expect(third.lastReconcileUsedMarker)

        // A restart with another desired ruleset: digest differs, full diff.
        var older = layout
        older.set(nil, for: added.id)
        let fourth = Reconciler(backend: fake, tables: MirrorTables.tableIDs)
        #expect(try fourth.reconcile(older.desired).summary == .counts(elementsDeleted: 1))
        #expect(!fourth.lastReconcileUsedMarker)
        expectSame(fake.ruleset, older.desired)

        // Someone else commits: the marker's generation is stale, so the kernel is read back.
        fake.externalChange { $0.tables[MirrorTables.tableIDs[0]]?.elements[MirrorTables.chainMap] = [:] }
        let fifth = Reconciler(backend: fake, tables: MirrorTables.tableIDs)
        #expect(try fifth.reconcile(older.desired).summary == .counts(elementsAdded: 1))
        #expect(!fifth.lastReconcileUsedMarker)
        expectSame(fake.ruleset, older.desired)
    }

    @Test func conflictingTransactionIsRejectedWhole() throws {
        let layout = MirrorTables(rules: [Self.gatewayRule("bar-paris", vip: "10.112.0.10", gateways: ["10.99.1.2"])])
        let fake = FakeRulesetBackend()
        try Reconciler(backend: fake, tables: MirrorTables.tableIDs).reconcile(layout.desired)
        let before = fake.ruleset
        let key: ValueList = [.address(Self.ip("10.112.0.10")), .proto(6), .port(80)]
        var conflicting = Transaction()
        conflicting.add(.addElements(MirrorTables.tableIDs[0], set: MirrorTables.dnatMap(for: Self.ip("10.112.0.10")),
                                     [Element(key: [.address(Self.ip("10.112.0.11")), .proto(6), .port(80)], data: .values([.address(Self.ip("10.0.0.1")), .port(1)]), comment: "default/ok")]))
        conflicting.add(.addElements(MirrorTables.tableIDs[0], set: MirrorTables.dnatMap(for: Self.ip("10.112.0.10")),
                                     [Element(key: key, data: .values([.address(Self.ip("10.0.0.9")), .port(9)]), comment: "default/clash")]))
        #expect(throws: NFTablesError.self) { _ = try fake.commit(conflicting, generation: nil) }
        #expect(fake.ruleset == before)
        do {
            _ = try fake.commit(conflicting, generation: nil)
        } catch {
            #expect("\(error)".contains("default/clash"), "the error names the service: \(error)")
        }
    }

    @Test func foreignCommitFallsBackToFullDiff() throws {
        let fake = FakeRulesetBackend()
        let reconciler = Reconciler(backend: fake, tables: MirrorTables.tableIDs)
        var layout = MirrorTables(rules: [Self.gatewayRule("bar-paris", vip: "10.112.0.10", gateways: ["10.99.1.2"])])
        try reconciler.reconcile(layout.desired)
        // Someone deletes our dnat element behind our back.
        fake.externalChange { $0.tables[MirrorTables.tableIDs[0]]?.elements[MirrorTables.dnatMap(for: Self.ip("10.112.0.10"))] = [:] }
        let added = Self.gatewayRule("qux-paris", vip: "10.112.0.20", gateways: ["10.99.1.2"])
        let scope = layout.set(added, for: added.id)
        let sent = try reconciler.update(layout.desired, scope: scope)
        #expect(sent.summary.elementsAdded == 2, "the full diff restores bar and adds qux: \(sent)")
        expectSame(fake.ruleset, layout.desired)
    }

    @Test func printsLoadableNftSyntax() {
        let layout = MirrorTables(rules: [Self.gatewayRule("bar-paris", vip: "10.112.0.10", gateways: ["10.99.1.2", "10.99.1.3"])])
        let text = layout.desired.nftText
        #expect(text.contains("table ip mirror-agent {"))
        #expect(text.contains("add element ip mirror-agent service-chains { 10.112.0.10 . tcp . 80 comment \"default/bar-paris\" : goto balance-2 }"), "\(text)")
        #expect(text.contains("dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 2 map @balance-targets comment \"2 targets"), "\(text)")
        #expect(text.contains("typeof ip daddr . meta l4proto . th dport . numgen random mod 2 : ip daddr . th dport"), "\(text)")
        #expect(text.contains("10.112.0.10 . tcp . 80 . 0 : 10.99.1.2 . 4143, 10.112.0.10 . tcp . 80 . 1 : 10.99.1.3 . 4143"), "\(text)")
    }
}

/// Compares two rulesets by their diff, so a failure prints the few differing objects.
func expectSame(_ have: Ruleset, _ want: Ruleset, sourceLocation: SourceLocation = #_sourceLocation) {
    let difference = Ruleset.diff(current: have, desired: want)
    #expect(difference.isEmpty, "differs by:\n\(difference)", sourceLocation: sourceLocation)
}
