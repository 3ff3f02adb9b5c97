import Testing
@testable import NFTables

/// A batch the kernel refuses changes nothing, and the error names the service concerned; a
/// batch bound to an old generation is refused with ERESTART.
struct KernelConflictTests {
    static func element(_ vip: String, to target: String, _ service: String) -> Element {
        Element(key: [.address(IPAddress(vip)!), .proto(6), .port(80)],
                data: .values([.address(IPAddress(target)!), .port(4143)]), comment: service)
    }

    @Test func conflictingBatchIsRejectedWhole() throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let namespace = try TestNamespace("conflict")
        let backend = Unchecked(try namespace.run { try KernelRulesetBackend() })
        let layout = MirrorTables(rules: KernelRoundTripTests.sampleRules())
        try Reconciler(backend: backend.value, tables: MirrorTables.tableIDs).reconcile(layout.desired)
        let before = try backend.value.read(MirrorTables.tableIDs).ruleset

        let v4 = MirrorTables.tableIDs[0]
        var filler: [Element] = []
        for index in 0 ..< 600 { filler.append(Self.element("10.113.\(index / 250).\(index % 250 + 1)", to: "10.99.1.2", "default/filler-\(index)")) }
        // The clash sits in the middle of a large element list (second message of the split).
        filler.insert(Self.element("10.112.0.10", to: "10.99.9.9", "default/clash-paris"), at: 450)
        var transaction = Transaction()
        transaction.add(.addChain(v4, Chain(name: "extra")))
        transaction.add(.addElements(v4, set: MirrorTables.dnatMap(for: IPAddress("10.112.0.10")!), ElementList(filler)))
        do {
            _ = try backend.value.commit(transaction, generation: nil)
            Issue.record("the kernel accepted a batch re-mapping an existing element")
        } catch let NFTablesError.rejected(changes) {
            #expect(changes.contains { $0.subject == "service default/clash-paris" }, "errors: \(changes)")
        }
        let after = try backend.value.read(MirrorTables.tableIDs).ruleset
        expectSame(after, before)
    }

    @Test func staleGenerationIsRefused() throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let namespace = try TestNamespace("genid")
        let backend = Unchecked(try namespace.run { try KernelRulesetBackend() })
        let layout = MirrorTables(rules: KernelRoundTripTests.sampleRules())
        try Reconciler(backend: backend.value, tables: MirrorTables.tableIDs).reconcile(layout.desired)
        let snapshot = try backend.value.read(MirrorTables.tableIDs)

        try namespace.exec(["nft", "add", "table", "ip", "someone-else"])
        var transaction = Transaction()
        transaction.add(.addElements(MirrorTables.tableIDs[0], set: MirrorTables.dnatMap(for: IPAddress("10.112.0.99")!), [Self.element("10.112.0.99", to: "10.99.1.2", "default/late")]))
        #expect(throws: GenerationChanged.self) { _ = try backend.value.commit(transaction, generation: snapshot.generation) }
        let after = try backend.value.read(MirrorTables.tableIDs).ruleset
        expectSame(after, snapshot.ruleset)

        // The reconciler notices and retries at the new generation.
        let reconciler = Reconciler(backend: backend.value, tables: MirrorTables.tableIDs)
        try reconciler.reconcile(layout.desired)
        try namespace.exec(["nft", "delete", "table", "ip", "someone-else"])
        var changed = layout
        let scope = changed.set(ServicePortRule(service: "default/late", proto: 6, port: 80, addresses: [IPAddress("10.112.0.99")!],
                                                targets: [.init(address: IPAddress("10.99.1.2")!, port: 4143)]), for: "late")
        let sent = try reconciler.update(changed.desired, scope: scope)
        #expect(sent.summary.elementsAdded == 1)
        expectSame(try backend.value.read(MirrorTables.tableIDs).ruleset, changed.desired)
    }
}
