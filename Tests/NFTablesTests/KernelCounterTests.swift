import Logging
import Testing
@testable import MirrorAgent
@testable import NFTables
import MirrorModel
import MirrorFeed

/// A service's packet and byte counters survive changes that replace its element: a new
/// number of targets (another value in `service-chains`), a move to the single-target map or
/// to the reject set. Real kernel, real connections from inside the namespace.
@Suite(.serialized) struct KernelCounterTests {
    let namespace: TestNamespace
    let harness: ComponentHarness
    let verifier: Unchecked<KernelRulesetBackend>
    static let vip = "10.112.0.11"
    let table = TableID(family: .ip, name: MirrorTables.tableName)
    let key: ValueList = [.address(IPAddress(vip)!), .proto(6), .port(80)]

    init() throws {
        namespace = try TestNamespace("counter")
        // A route for the targets, so connections leave through the nat output chain.
        try namespace.exec(["ip", "link", "add", "c0", "type", "veth", "peer", "name", "c1"])
        try namespace.exec(["ip", "link", "set", "c0", "up"])
        try namespace.exec(["ip", "link", "set", "c1", "up"])
        try namespace.exec(["ip", "route", "add", "10.0.0.0/8", "dev", "c0"])
        let logger = Logger(label: "test")
        let component = try namespace.run { try RulesComponent(dnsAddresses: [], logger: logger) }
        harness = ComponentHarness(component: component)
        verifier = Unchecked(try namespace.run { try KernelRulesetBackend() })
    }

    /// Opens `count` TCP connections to the VIP (each one new conntrack entry: one lookup).
    private func connect(_ count: Int) throws {
        let script = """
        import socket
        held = []
        for _ in range(\(count)):
            s = socket.socket(); s.setblocking(False); s.connect_ex(("\(Self.vip)", 80)); held.append(s)
        """
        try namespace.exec(["python3", "-c", script])
    }

    /// The element for the VIP's port: which set holds it and its counter.
    private func element() throws -> (set: String, counter: Counter)? {
        let snapshot = try verifier.value.read(MirrorTables.tableIDs)
        for (set, counters) in snapshot.counters[table] ?? [:] {
            if let counter = counters[key] { return (set, counter) }
        }
        return nil
    }

    private func state(readyEndpoints: Int) -> MirrorState {
        MirrorStates.editing(MirrorStates.base(), service: "baz") {
            $0.endpoints = (5 ..< 8).map { Endpoint(ip: "10.20.1.\($0)", ready: $0 - 5 < readyEndpoints) }
        }
    }

    @Test func countersSurviveReplacement() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        _ = try await harness.apply(state(readyEndpoints: 3))
        try connect(5)
        let before = try #require(try element())
        #expect(before.set == MirrorTables.chainMap && before.counter.packets == 5, "\(before)")
        // The per-service totals /metrics reads, folded from the dump, agree.
        let service = try #require(try verifier.value.read(MirrorTables.tableIDs).ruleset[table]?.elements[before.set]?[key]?.comment)
        #expect(try verifier.value.serviceCounters(MirrorTables.tableIDs)[service] == before.counter, "totals for \(service)")

        // 3 -> 2 targets: the verdict map element is replaced (goto balance-3 -> balance-2).
        let sent = try await harness.apply(state(readyEndpoints: 2))
        #expect(sent.carriedCounters.count == 1, "\(sent)")
        let two = try #require(try element())
        #expect(two.set == MirrorTables.chainMap && two.counter == before.counter, "3 -> 2 targets: \(two)")

        // 2 -> 1: the port moves to its single-target map; more connections add up.
        _ = try await harness.apply(state(readyEndpoints: 1))
        try connect(2)
        let one = try #require(try element())
        #expect(one.set == MirrorTables.dnatMap(for: IPAddress(Self.vip)!) && one.counter.packets == 7, "2 -> 1 target: \(one)")

        // 1 -> 0: rejected, still counting from 7.
        _ = try await harness.apply(state(readyEndpoints: 0))
        let none = try #require(try element())
        #expect(none.set == MirrorTables.rejectSet && none.counter == one.counter, "no target: \(none)")

        // Back to 3 targets after a restart (full reconcile path): still carried.
        let logger = Logger(label: "test")
        let restarted = ComponentHarness(component: try namespace.run { try RulesComponent(dnsAddresses: [], logger: logger) })
        _ = try await restarted.apply(state(readyEndpoints: 3))
        let again = try #require(try element())
        #expect(again.set == MirrorTables.chainMap && again.counter == one.counter, "restart with 3 targets: \(again)")
    }
}
