import Logging
import Testing
@testable import MirrorAgent
@testable import NFTables
import MirrorModel
import MirrorFeed

/// Every kind of mirror-state change, through the agent's translation and the real kernel:
/// the batch is the minimal one and the kernel then holds exactly the desired tables.
@Suite(.serialized) struct KernelChangeTests {
    let namespace: TestNamespace
    let harness: ComponentHarness
    let verifier: Unchecked<KernelRulesetBackend>

    init() throws {
        namespace = try TestNamespace("change")
        let logger = Logger(label: "test")
        let component = try namespace.run { try RulesComponent(dnsAddresses: [], logger: logger) }
        harness = ComponentHarness(component: component)
        verifier = Unchecked(try namespace.run { try KernelRulesetBackend() })
    }

    private func expectKernelMatches(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let snapshot = try verifier.value.read(MirrorTables.tableIDs)
        expectSame(snapshot.ruleset, await harness.component.desired, sourceLocation: sourceLocation)
    }

    private func step(_ state: MirrorState, expect expected: TransactionSummary, _ what: String,
                      sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let sent = try await harness.apply(state)
        #expect(sent.summary == expected, "\(what): sent \(sent.summary)\n\(sent)", sourceLocation: sourceLocation)
        try await expectKernelMatches(sourceLocation: sourceLocation)
        let again = try await harness.apply(state)
        #expect(again.isEmpty, "\(what): re-applying sent \(again)", sourceLocation: sourceLocation)
    }

    @Test func everyKindOfChangeIsMinimal() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        var state = MirrorStates.base()
        let first = try await harness.apply(state)
        #expect(first.summary.tablesAdded == 2)
        try await expectKernelMatches()

        let qux = MirroredService(name: "qux", namespace: "default", cluster: "paris", mode: .gateway,
                                  ips: ["10.112.0.20"], ports: [ServicePort(port: 80)])
        state.services.append(qux)
        try await step(state, expect: .counts(elementsAdded: 1), "add service (gateway target already masqueraded)")

        state.services.removeAll { $0.name == "qux" }
        try await step(state, expect: .counts(elementsDeleted: 1), "remove service")

        state = MirrorStates.editing(state, service: "bar") { $0.ports.append(ServicePort(name: "https", port: 443)) }
        try await step(state, expect: .counts(elementsAdded: 1), "add port")

        state = MirrorStates.editing(state, service: "baz") { $0.endpoints.append(Endpoint(ip: "10.20.1.6")) }
        try await step(state, expect: .counts(elementsAdded: 4, elementsDeleted: 1),
                       "add endpoint: dnat element becomes a vmap element to the existing balance-2 and two targets, new masquerade target")

        state = MirrorStates.editing(state, service: "baz") { $0.endpoints[1].ready = false }
        try await step(state, expect: .counts(elementsAdded: 1, elementsDeleted: 4),
                       "endpoint not ready: back to one dnat element")

        state = MirrorStates.editing(state, cluster: "paris") { $0.gateway?.addresses.append("10.99.1.3") }
        try await step(state, expect: .counts(elementsAdded: 7, elementsDeleted: 2),
                       "add gateway address: both bar ports balance over two gateways")

        state = MirrorStates.editing(state, service: "bar") {
            $0.mode = .remoteDiscovery
            $0.endpoints = [Endpoint(ip: "10.20.1.9")]
        }
        try await step(state, expect: .counts(elementsAdded: 4, elementsDeleted: 8),
                       "mode switch gateway -> remote-discovery")

        state = MirrorStates.editing(state, cluster: "berlin") { $0.gateway?.alive = false }
        try await step(state, expect: .counts(elementsAdded: 1, elementsDeleted: 2), "cluster dead: foo rejected")

        state = MirrorStates.editing(state, cluster: "berlin") { $0.gateway?.alive = true }
        try await step(state, expect: .counts(elementsAdded: 2, elementsDeleted: 1), "cluster alive again")
    }

    @Test func restartReconcilesToAnEmptyBatch() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        _ = try await harness.apply(MirrorStates.base())
        // A new agent (fresh component, same state) reads the tables back and sends nothing.
        let logger = Logger(label: "test")
        let restarted = ComponentHarness(component: try namespace.run { try RulesComponent(dnsAddresses: [], logger: logger) })
        let sent = try await restarted.apply(MirrorStates.base())
        #expect(sent.isEmpty, "restart sent \(sent)")
        let marker = try namespace.exec(["nft", "list", "set", "ip", "mirror-agent", "reconcile-marker"])
        #expect(marker.contains("comment \"generation "), "the batch left its marker: \(marker)")
    }

    @Test func restartAfterAForeignChangeReadsBackAndRepairs() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        _ = try await harness.apply(MirrorStates.base())
        // Someone else deletes one of our elements: the generation moves past the marker's.
        let foo = "10.112.0.30"
        _ = try namespace.exec(["nft", "delete", "element", "ip", "mirror-agent", MirrorTables.dnatMap(for: IPAddress(foo)!), "{ \(foo) . tcp . 80 }"])
        let logger = Logger(label: "test")
        let restarted = ComponentHarness(component: try namespace.run { try RulesComponent(dnsAddresses: [], logger: logger) })
        let sent = try await restarted.apply(MirrorStates.base())
        #expect(sent.summary == .counts(elementsAdded: 1), "the restart puts the element back: \(sent)")
        try await expectKernelMatches()
    }

    @Test func restartWithAChangedStateSendsTheDifference() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        _ = try await harness.apply(MirrorStates.base())
        var state = MirrorStates.base()
        state.services.removeAll { $0.name == "foo" }
        let logger = Logger(label: "test")
        let restarted = ComponentHarness(component: try namespace.run { try RulesComponent(dnsAddresses: [], logger: logger) })
        let sent = try await restarted.apply(state)
        #expect(sent.summary == .counts(elementsDeleted: 2), "foo's element and its gateway's masquerade entry: \(sent)")
        let snapshot = try verifier.value.read(MirrorTables.tableIDs)
        expectSame(snapshot.ruleset, await restarted.component.desired)
    }

    @Test func printedRulesetLoadsWithNftAndReconcilesToNothing() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        var store = MirrorStore()
        try store.applySnapshot(MirrorStates.base(), revision: 1)
        let text = RulesTranslator.layout(for: store, dnsAddresses: [IPAddress("169.254.20.10")!]).desired.nftText
        try Shell.run(["ip", "netns", "exec", namespace.name, "nft", "-f", "-"], input: text)
        let logger = Logger(label: "test")
        let component = try namespace.run { try RulesComponent(dnsAddresses: [IPAddress("169.254.20.10")!], logger: logger) }
        let sent = try await ComponentHarness(component: component).apply(MirrorStates.base())
        #expect(sent.isEmpty, "after nft -f of --print-ruleset output the agent sent \(sent)")
    }
}
