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

    @Test func singleToMultiTargetMovesToAChain() throws {
        let fake = FakeRulesetBackend()
        let reconciler = Reconciler(backend: fake, tables: MirrorTables.tableIDs)
        var layout = MirrorTables(rules: [Self.gatewayRule("bar-paris", vip: "10.112.0.10", gateways: ["10.99.1.2"])])
        try reconciler.reconcile(layout.desired)
        let two = Self.gatewayRule("bar-paris", vip: "10.112.0.10", gateways: ["10.99.1.2", "10.99.1.3"])
        let scope = layout.set(two, for: two.id)
        let sent = try reconciler.update(layout.desired, scope: scope)
        let summary = sent.summary
        #expect(summary.chainsAdded == 1 && summary.rulesAdded == 2)
        #expect(summary.elementsDeleted == 1 && summary.elementsAdded == 2) // dnat out; vmap in; new masquerade target
        expectSame(fake.ruleset, layout.desired)

        // And back: the chain goes away after its vmap element.
        let one = Self.gatewayRule("bar-paris", vip: "10.112.0.10", gateways: ["10.99.1.3"])
        let backScope = layout.set(one, for: one.id)
        let back = try reconciler.update(layout.desired, scope: backScope)
        #expect(back.summary.chainsDeleted == 1)
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
        #expect(text.contains("add element ip mirror-agent service-chains { 10.112.0.10 . tcp . 80 comment \"default/bar-paris\" : goto svc/default/bar-paris/tcp/80 }"))
        #expect(text.contains("meta l4proto tcp numgen random mod 2 == 0 dnat to 10.99.1.2:4143"))
    }
}

/// Compares two rulesets by their diff, so a failure prints the few differing objects.
func expectSame(_ have: Ruleset, _ want: Ruleset, sourceLocation: SourceLocation = #_sourceLocation) {
    let difference = Ruleset.diff(current: have, desired: want)
    #expect(difference.isEmpty, "differs by:\n\(difference)", sourceLocation: sourceLocation)
}
