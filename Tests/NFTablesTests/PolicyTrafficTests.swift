import Foundation
import Logging
import Testing
@testable import NFTables
@testable import MirrorAgent
import MirrorModel
import MirrorFeed

/// Traffic policies in a real kernel, with real connections. The node of ``TrafficTopology``
/// gets a local pod and a kube-proxy stand-in (a table of its own whose nat chains at priority
/// `dstnat` DNAT the local service's ClusterIP to the local pod), so a connection the agent's
/// chain (at `dstnat - 1`) leaves alone reaches the local pod, and one it DNATs reaches the
/// paris gateway:
///
///     pod (10.0.0.2) ── node ─┬─ local pod (10.0.1.5:8080, "local-pod")  ← kube-proxy: 10.96.0.50:80
///                             └─ paris gateway (10.99.1.2:4143, "paris-gw-1"; .3: "paris-gw-2")
@Suite(.serialized) struct PolicyTrafficTests {
    static let vip = "10.96.0.50"
    static let policy = "default/web"

    final class Lab: @unchecked Sendable {
        let topology: TrafficTopology
        let local: TestNamespace
        let reconciler: Reconciler
        var layout = MirrorTables()

        init(_ label: String) throws {
            topology = try TrafficTopology(label)
            local = try TestNamespace("\(label)-loc")
            try topology.lab.link(topology.node, "to-local", "10.0.1.1/24", local, "eth0", ["10.0.1.5/24"])
            try local.exec(["ip", "route", "add", "default", "via", "10.0.1.1"])
            // Host-network clients need a route to the ClusterIP before NAT.
            try topology.node.exec(["ip", "route", "add", "10.96.0.0/16", "dev", "to-local"])
            try topology.lab.serve(local, "10.0.1.5", 8080, "local-pod")
            let kubeProxy = """
                table ip kube-proxy-standin {
                    chain prerouting {
                        type nat hook prerouting priority -100; policy accept;
                        ip daddr \(PolicyTrafficTests.vip) tcp dport 80 dnat to 10.0.1.5:8080
                    }
                    chain output {
                        type nat hook output priority -100; policy accept;
                        ip daddr \(PolicyTrafficTests.vip) tcp dport 80 dnat to 10.0.1.5:8080
                    }
                }
                """
            try Shell.run(["ip", "netns", "exec", topology.node.name, "nft", "-f", "-"], input: kubeProxy)
            reconciler = Reconciler(backend: try topology.node.run { try KernelRulesetBackend() }, tables: MirrorTables.tableIDs)
            try reconciler.reconcile(layout.desired)
        }

        /// Puts `backends` in force for the policy's port (nil: the policy is gone) and returns
        /// the batch sent.
        @discardableResult
        func set(_ backends: [PolicyPortRule.Backend]?) throws -> Transaction {
            let rules = backends.map {
                [PolicyPortRule(policy: PolicyTrafficTests.policy, proto: 6, port: 80, addresses: [IPAddress(PolicyTrafficTests.vip)!], backends: $0)]
            } ?? []
            let scope = layout.setPolicyRules(rules, forPolicy: PolicyTrafficTests.policy)
            return try reconciler.update(layout.desired, scope: scope)
        }

        /// `count` HTTP connections, one after the other, from `client` to the ClusterIP:
        /// how many each server answered (`error` for failures).
        func connect(_ count: Int, from client: TestNamespace) throws -> [String: Int] {
            let program = """
                import socket, sys, json, collections
                tally = collections.Counter()
                for _ in range(int(sys.argv[1])):
                    try:
                        s = socket.create_connection((sys.argv[2], 80), timeout=3)
                        s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
                        data = b""
                        while True:
                            chunk = s.recv(4096)
                            if not chunk:
                                break
                            data += chunk
                        s.close()
                        tally[data.split(b"\\r\\n\\r\\n", 1)[-1].decode().strip() or "empty"] += 1
                    except OSError:
                        tally["error"] += 1
                print(json.dumps(tally))
                """
            let output = try client.exec(["python3", "-c", program, "\(count)", PolicyTrafficTests.vip])
            return try JSONDecoder().decode([String: Int].self, from: Data(output.utf8))
        }

        /// Packets per backend of the policy's port, as the agent reads them (per comment).
        func counters() throws -> [String: UInt64] {
            let backend = try topology.node.run { try KernelRulesetBackend() }
            defer { backend.close() }
            var result: [String: UInt64] = [:]
            for (comment, counter) in try backend.serviceCounters(MirrorTables.tableIDs) {
                guard let label = PolicyPortRule.counterLabel(comment), label.policy == PolicyTrafficTests.policy else { continue }
                result[label.backend, default: 0] += counter.packets
            }
            return result
        }
    }

    static let paris = [ServicePortRule.Target(address: IPAddress("10.99.1.2")!, port: 4143, masquerade: true)]

    static func split(local: Int, paris: Int, targets: [ServicePortRule.Target] = PolicyTrafficTests.paris) -> [PolicyPortRule.Backend] {
        [.local(weight: local), .mirror("web-paris", weight: paris, targets: targets)]
    }

    /// Whether `observed` successes out of `trials` lie within 4σ of the binomial mean; prints
    /// the figures.
    static func withinBinomial(_ observed: Int, trials: Int, p: Double, _ label: String) -> Bool {
        let mean = Double(trials) * p
        let sigma = (Double(trials) * p * (1 - p)).squareRoot()
        let deviation = (Double(observed) - mean) / sigma
        print("\(label): \(observed) of \(trials) (expected \(mean) ± 4σ = ±\(String(format: "%.1f", 4 * sigma)); \(String(format: "%+.2f", deviation))σ)")
        return abs(deviation) <= 4
    }

    @Test func ninetyTenLandsWithinABinomialTolerance() throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let lab = try Lab("pol9")
        // Without a policy, kube-proxy has the ClusterIP.
        #expect(try lab.connect(5, from: lab.topology.pod) == ["local-pod": 5])

        try lab.set(Self.split(local: 90, paris: 10))
        let tally = try lab.connect(1000, from: lab.topology.pod)
        #expect(tally["error"] == nil && tally.values.reduce(0, +) == 1000, "\(tally)")
        let remote = tally["paris-gw-1"] ?? 0
        #expect(Self.withinBinomial(remote, trials: 1000, p: 0.1, "90/10 split, connections to the mirror"), "\(tally)")
        #expect(tally["local-pod"] == 1000 - remote, "the local share reached the local pod through kube-proxy's chain: \(tally)")

        // The kernel counted each connection's first packet once, per backend.
        let counters = try lab.counters()
        #expect(counters == ["local": UInt64(1000 - remote), "web-paris": UInt64(remote)], "\(counters)")

        // From the node itself (nat output) too.
        let fromNode = try lab.connect(200, from: lab.topology.node)
        #expect(fromNode["error"] == nil && (fromNode["paris-gw-1"] ?? 0) > 0 && (fromNode["local-pod"] ?? 0) > 0, "\(fromNode)")
    }

    @Test func weightsReadinessAndRemovalAreElementChangesThatApplyAtOnce() throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let lab = try Lab("polw")
        try lab.set(Self.split(local: 90, paris: 10))

        func expectElementOnly(_ sent: Transaction, _ what: String) {
            let summary = sent.summary
            #expect(!sent.isEmpty && summary.chainsAdded == 0 && summary.chainsFlushed == 0 && summary.chainsDeleted == 0
                && summary.rulesAdded == 0 && summary.setsAdded == 0 && summary.setsDeleted == 0 && summary.tablesAdded == 0,
                "\(what): element-only, one batch: \(sent.summary)")
            print("\(what): \(summary)")
        }

        // 50/50.
        expectElementOnly(try lab.set(Self.split(local: 50, paris: 50)), "90/10 -> 50/50")
        let half = try lab.connect(400, from: lab.topology.pod)
        #expect(half["error"] == nil && half.values.reduce(0, +) == 400, "\(half)")
        #expect(Self.withinBinomial(half["paris-gw-1"] ?? 0, trials: 400, p: 0.5, "50/50 split, connections to the mirror"), "\(half)")

        // A second gateway address becomes ready: 50/25/25.
        let two = Self.paris + [ServicePortRule.Target(address: IPAddress("10.99.1.3")!, port: 4143, masquerade: true)]
        expectElementOnly(try lab.set(Self.split(local: 50, paris: 50, targets: two)), "second gateway address ready")
        let spread = try lab.connect(400, from: lab.topology.pod)
        #expect(spread["error"] == nil && spread.values.reduce(0, +) == 400, "\(spread)")
        #expect(Self.withinBinomial(spread["paris-gw-2"] ?? 0, trials: 400, p: 0.25, "50/25/25, connections to the second address"), "\(spread)")

        // Local share 0: everything remote.
        expectElementOnly(try lab.set(Self.split(local: 0, paris: 50, targets: two)), "local share 0")
        let remote = try lab.connect(100, from: lab.topology.pod)
        #expect(remote["local-pod"] == nil && remote["error"] == nil && (remote["paris-gw-1"] ?? 0) + (remote["paris-gw-2"] ?? 0) == 100, "\(remote)")

        // The mirror has no live target any more: everything local (falls through).
        expectElementOnly(try lab.set(Self.split(local: 0, paris: 50, targets: [])), "mirror dead")
        #expect(try lab.connect(50, from: lab.topology.pod) == ["local-pod": 50])

        // Back to 90/10, then the policy removed: kube-proxy has the ClusterIP again.
        expectElementOnly(try lab.set(Self.split(local: 90, paris: 10)), "back to 90/10")
        expectElementOnly(try lab.set(nil), "policy removed")
        #expect(try lab.connect(100, from: lab.topology.pod) == ["local-pod": 100])
        #expect(try lab.connect(20, from: lab.topology.node) == ["local-pod": 20])
        let table = try #require(try lab.topology.node.run { try KernelRulesetBackend() }.read(MirrorTables.tableIDs).ruleset[PolicyLayoutTests.v4])
        #expect(table.elements[MirrorTables.policyPortsMap]?.isEmpty == true && table.elements[MirrorTables.policySlotsMap]?.isEmpty == true)
        // Nothing left behind: the kernel holds what the layout says.
        #expect(try lab.reconciler.reconcile(lab.layout.desired).isEmpty)
    }

    /// The mirror state the agent translates: `bar` mirrored from paris and berlin (their
    /// gateways), and the policy of the local `bar` (10.96.0.50): 90/10 with bar-paris,
    /// failing over to bar-berlin, then bar-paris.
    static func state(localReady: Bool = true, berlinAlive: Bool = true, local: Int = 90) -> MirrorState {
        MirrorState(
            clusters: [
                Cluster(name: "paris", gateway: Gateway(addresses: ["10.99.1.2"]), masquerade: true),
                Cluster(name: "berlin", gateway: Gateway(addresses: ["10.99.2.2"], alive: berlinAlive), masquerade: true),
            ],
            services: [
                MirroredService(name: "bar", namespace: "default", cluster: "paris", mode: .gateway,
                                ips: ["10.112.0.10"], ports: [ServicePort(name: "http", port: 80)]),
                MirroredService(name: "bar", namespace: "default", cluster: "berlin", mode: .gateway,
                                ips: ["10.112.0.20"], ports: [ServicePort(name: "http", port: 80)]),
            ],
            policies: [
                TrafficPolicy(name: "bar", namespace: "default", ips: [vip], ports: [PolicyPort(name: "http", port: 80)],
                              backends: [PolicyBackend(weight: local), PolicyBackend(mirror: "bar-paris", weight: 100 - local)],
                              failover: ["bar-berlin", "bar-paris"], localReady: localReady),
            ]
        )
    }

    /// The agent's component end to end: the split, failover to the first live mirror, the
    /// next one when its cluster dies, back to the split when a local endpoint is ready; each
    /// an element-only batch, in force for the next connection; `dump`'s rows from the kernel.
    @Test func theAgentSplitsAndFailsOver() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let lab = try Lab("polf")
        let logger = Logger(label: "policy")
        let harness = ComponentHarness(component: try lab.topology.node.run { try RulesComponent(dnsAddresses: [], logger: logger) })
        var store = MirrorStore()
        func apply(_ state: MirrorState, _ what: String) async throws {
            let start = ContinuousClock.now
            let sent = try await harness.apply(state)
            let took = ContinuousClock.now - start
            _ = try store.applySnapshot(state, revision: store.revision + 1)
            let summary = sent.summary
            print("\(what): \(summary) in \(String(format: "%.2f", took.milliseconds)) ms")
            if store.revision > 1 {
                #expect(summary.chainsAdded == 0 && summary.chainsFlushed == 0 && summary.rulesAdded == 0, "\(what): element-only: \(summary)")
            }
        }

        try await apply(Self.state(), "policy 90/10")
        let split = try lab.connect(300, from: lab.topology.pod)
        #expect(split["error"] == nil && split.values.reduce(0, +) == 300, "\(split)")
        #expect(Self.withinBinomial(split["paris-gw-1"] ?? 0, trials: 300, p: 0.1, "agent 90/10, connections to bar-paris"), "\(split)")

        // The local service loses its last ready endpoint: the next connection goes to berlin.
        try await apply(Self.state(localReady: false), "local not ready")
        #expect(try lab.connect(50, from: lab.topology.pod) == ["berlin-gw": 50])
        // Berlin dies: paris, the next failover mirror.
        try await apply(Self.state(localReady: false, berlinAlive: false), "berlin dead")
        #expect(try lab.connect(50, from: lab.topology.pod) == ["paris-gw-1": 50])
        // A local endpoint is ready again: the split is back.
        try await apply(Self.state(berlinAlive: false), "local ready again")
        let back = try lab.connect(300, from: lab.topology.pod)
        #expect(back["error"] == nil && back["berlin-gw"] == nil, "\(back)")
        #expect(Self.withinBinomial(back["paris-gw-1"] ?? 0, trials: 300, p: 0.1, "split restored, connections to bar-paris"), "\(back)")

        // dump's rows, counters read from the kernel as the agent does.
        let counters = try lab.topology.node.run { () -> [String: NFTables.Counter] in
            let backend = try KernelRulesetBackend()
            defer { backend.close() }
            return try backend.serviceCounters(MirrorTables.tableIDs)
        }
        let rows = AgentStatus.policies(store, counters: counters)
        #expect(rows.map(\.backend) == ["local", "bar-paris"] && rows.map(\.share) == [0.9, 0.1], "\(rows)")
        #expect(rows.first { $0.backend == "local" }?.packets == UInt64(back["local-pod"] ?? 0) + UInt64(split["local-pod"] ?? 0), "\(rows)")
        // Slot 0 went to bar-berlin (its count does not follow: another backend), then to
        // bar-paris again when berlin died: it counts from there.
        #expect(rows.first { $0.backend == "bar-paris" }?.packets == 50 + UInt64(back["paris-gw-1"] ?? 0), "\(rows)")
        let snapshot = try lab.topology.node.run { try KernelRulesetBackend().read(MirrorTables.tableIDs) }
        print(RulesetReport(snapshot).text)
    }
}
