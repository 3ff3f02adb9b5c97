import Foundation
import Logging
import Testing
@testable import MirrorAgent
import MirrorModel
import MirrorFeed
import NFTables

/// Traffic policies through the agent: translation of the mirror state (split, live targets,
/// failover), the incremental path against a full translation, `dump` and `/metrics`.
@Suite struct PolicyRulesTests {
    static func state(local: Int = 90, paris: Int = 10, localReady: Bool = true, parisAlive: Bool = true, berlinAlive: Bool = true,
                      parisGateways: [String] = ["10.99.1.2"], policies: Bool = true, flatEndpoints: [String] = ["10.20.1.5"]) -> MirrorState {
        MirrorState(
            clusters: [
                Cluster(name: "paris", gateway: Gateway(addresses: parisGateways, alive: parisAlive), masquerade: true),
                Cluster(name: "berlin", gateway: Gateway(addresses: ["10.99.2.2"], alive: berlinAlive)),
            ],
            services: [
                MirroredService(name: "bar", namespace: "default", cluster: "paris", mode: .gateway,
                                ips: ["10.112.0.10"], ports: [ServicePort(name: "http", port: 80, targetPort: 8080)]),
                MirroredService(name: "bar", namespace: "default", cluster: "berlin", mode: .gateway,
                                ips: ["10.112.0.20"], ports: [ServicePort(name: "http", port: 80, targetPort: 8080, gatewayPort: 20001)]),
                MirroredService(name: "baz", namespace: "default", cluster: "paris", mode: .remoteDiscovery,
                                ips: ["10.112.0.11"], ports: [ServicePort(port: 80, targetPort: 8080)],
                                endpoints: flatEndpoints.map { Endpoint(ip: $0) }),
            ],
            policies: policies ? [
                TrafficPolicy(name: "bar", namespace: "default", ips: ["10.96.0.10"], ports: [PolicyPort(name: "http", port: 80)],
                              backends: [PolicyBackend(weight: local), PolicyBackend(mirror: "bar-paris", weight: paris)],
                              failover: ["bar-berlin", "bar-paris"], localReady: localReady),
                TrafficPolicy(name: "baz", namespace: "default", ips: ["10.96.0.11"], ports: [PolicyPort(port: 80)],
                              backends: [PolicyBackend(weight: 1), PolicyBackend(mirror: "baz-paris", weight: 1)]),
            ] : []
        )
    }

    static func store(_ state: MirrorState) throws -> MirrorStore {
        var store = MirrorStore()
        _ = try store.applySnapshot(state, revision: 1)
        return store
    }

    static func rule(_ store: MirrorStore, _ name: String = "bar") throws -> PolicyPortRule {
        let policy = try #require(store.policies[PolicyKey(namespace: "default", name: name)])
        return try #require(RulesTranslator.rules(for: policy, store: store).first)
    }

    static func target(_ address: String, _ port: UInt16, masquerade: Bool = true) -> ServicePortRule.Target {
        ServicePortRule.Target(address: IPAddress(address)!, port: port, masquerade: masquerade)
    }

    @Test func aSplitUsesEachMirrorsOwnTargets() throws {
        let store = try Self.store(Self.state())
        let bar = try Self.rule(store)
        #expect(bar.policy == "default/bar" && bar.proto == 6 && bar.port == 80 && bar.addresses == [IPAddress("10.96.0.10")!])
        #expect(bar.backends == [.local(weight: 90), .mirror("bar-paris", weight: 10, targets: [Self.target("10.99.1.2", 4143)])])
        // Pod IPs at the target port for a remote-discovery mirror.
        let baz = try Self.rule(store, "baz")
        #expect(baz.backends.last == .mirror("baz-paris", weight: 1, targets: [Self.target("10.20.1.5", 8080)]))
        #expect(baz.slots(for: .ip).count == 2)
    }

    @Test func aDeadMirrorGetsNoShare() throws {
        let dead = try Self.rule(Self.store(Self.state(parisAlive: false)))
        #expect(dead.backends.last?.targets == [], "\(dead.backends)")
        #expect(dead.slots(for: .ip).remote.isEmpty && dead.slots(for: .ip).count == 1, "everything local")
        // A remote-discovery mirror whose cluster is dead, or without a ready endpoint.
        #expect(try Self.rule(Self.store(Self.state(parisAlive: false)), "baz").slots(for: .ip).remote.isEmpty)
        #expect(try Self.rule(Self.store(Self.state(flatEndpoints: [])), "baz").slots(for: .ip).remote.isEmpty)
    }

    @Test func failoverGoesToTheFirstLiveMirrorThenTheNextThenLocal() throws {
        let first = try Self.rule(Self.store(Self.state(localReady: false)))
        #expect(first.backends == [.mirror("bar-berlin", weight: 1, targets: [Self.target("10.99.2.2", 20001, masquerade: false)])])
        #expect(first.slots(for: .ip).count == 1 && first.slots(for: .ip).local == 0)
        let second = try Self.rule(Self.store(Self.state(localReady: false, berlinAlive: false)))
        #expect(second.backends == [.mirror("bar-paris", weight: 1, targets: [Self.target("10.99.1.2", 4143)])])
        let none = try Self.rule(Self.store(Self.state(localReady: false, parisAlive: false, berlinAlive: false)))
        #expect(none.backends == [.local(weight: 1)])
        #expect(none.slots(for: .ip).remote.isEmpty)
    }

    @Test func udpFlowsPinnedToATargetThePolicyNoLongerUsesAreSelected() throws {
        func rules(_ state: MirrorState) throws -> [ServicePortRule] {
            var state = state
            state.policies[0].ports = [PolicyPort(protocol: .udp, port: 53)]
            for index in state.services.indices { state.services[index].ports.append(ServicePort(protocol: .udp, port: 53)) }
            let store = try Self.store(state)
            return RulesTranslator.flowRules(RulesTranslator.rules(for: try #require(store.policies[PolicyKey(namespace: "default", name: "bar")]), store: store))
        }
        let split = try rules(Self.state())
        #expect(split.map(\.targets) == [[Self.target("10.99.1.2", 4143)]])
        // Paris dies: flows DNATed to its gateway move (their next packet is local).
        let selectors = StaleFlows.selectors(old: split, new: try rules(Self.state(parisAlive: false)))
        #expect(selectors.count == 1 && selectors[0].replySourcePort == 4143, "\(selectors)")
        #expect(StaleFlows.selectors(old: split, new: try rules(Self.state(local: 50, paris: 50))).isEmpty, "same targets: nothing moves")
    }

    /// Every change through the incremental path leaves the same tables as translating the
    /// state afresh, and changes of weights, readiness and liveness are element-only.
    @Test func incrementalChangesMatchAFreshTranslation() async throws {
        let component = RulesComponent(backend: FakeRulesetBackend(), dnsAddresses: [], logger: Logger(label: "test"))
        var store = MirrorStore()
        let steps: [(String, MirrorState)] = [
            ("no policies", Self.state(policies: false)),
            ("policies added", Self.state()),
            ("weights 50/50", Self.state(local: 50, paris: 50)),
            ("second paris gateway address", Self.state(local: 50, paris: 50, parisGateways: ["10.99.1.2", "10.99.1.3"])),
            ("paris dead", Self.state(local: 50, paris: 50, parisAlive: false, parisGateways: ["10.99.1.2", "10.99.1.3"])),
            ("paris back", Self.state(local: 50, paris: 50)),
            ("local not ready: failover to berlin", Self.state(localReady: false)),
            ("berlin dead: failover to paris", Self.state(localReady: false, berlinAlive: false)),
            ("local ready again", Self.state(berlinAlive: false)),
            ("flat endpoints change", Self.state(flatEndpoints: ["10.20.1.6", "10.20.1.7"])),
            ("policies removed", Self.state(policies: false)),
        ]
        for (index, (what, state)) in steps.enumerated() {
            let changes = try store.applySnapshot(state, revision: UInt64(index + 1))
            let sent = try await component.applyAndReport(MirrorUpdate(store: store, changes: changes))
            let fresh = RulesTranslator.layout(for: store, dnsAddresses: [])
            #expect(await component.desired == fresh.desired, "\(what): incremental equals a full translation")
            let summary = sent.summary
            if index > 0 {
                #expect(summary.chainsAdded == 0 && summary.chainsDeleted == 0 && summary.chainsFlushed == 0 && summary.rulesAdded == 0
                    && summary.setsAdded == 0, "\(what): element-only: \(summary)")
            }
            if index > 1 && index < steps.count - 1 { #expect(!sent.isEmpty, "\(what) changed something") }
        }
    }

    @Test func dumpShowsSharesAndPacketsPerBackend() throws {
        let store = try Self.store(Self.state())
        let counters: [String: NFTables.Counter] = [
            "policy default/bar tcp/80 local": NFTables.Counter(packets: 903, bytes: 54_180),
            "policy default/bar tcp/80 bar-paris": NFTables.Counter(packets: 97, bytes: 5820),
            "default/bar-paris": NFTables.Counter(packets: 5, bytes: 300),
        ]
        let rows = AgentStatus.policies(store, counters: counters)
        #expect(rows.filter { $0.policy == "default/bar" } == [
            AgentStatus.PolicyRow(policy: "default/bar", port: "tcp/80", backend: "local", share: 0.9, packets: 903),
            AgentStatus.PolicyRow(policy: "default/bar", port: "tcp/80", backend: "bar-paris", share: 0.1, packets: 97),
        ])
        #expect(rows.filter { $0.policy == "default/baz" }.map(\.share) == [0.5, 0.5])

        let failover = AgentStatus.policies(try Self.store(Self.state(localReady: false)), counters: [:]).filter { $0.policy == "default/bar" }
        #expect(failover.map(\.backend) == ["bar-berlin", "local", "bar-paris"], "the mirror in force, then the configured backends: \(failover)")
        #expect(failover[0].share == 1 && failover[0].note == "failover: no ready local endpoint" && failover[0].packets == nil)
        let dead = AgentStatus.policies(try Self.store(Self.state(parisAlive: false)), counters: [:]).filter { $0.policy == "default/bar" }
        #expect(dead.map(\.share) == [1, 0] && dead[1].note == "no live target", "\(dead)")

        var status = AgentStatus(agent: .init(pid: 1, version: "test", startedAt: .now),
                                 feed: .init(source: "file", ready: true, revision: 1, updates: 1),
                                 clusters: [], services: [],
                                 dns: .init(enabled: false, failures: 0, detail: [:]), nftables: .init(enabled: true, failures: 0, detail: [:]))
        status.policies = rows
        let text = StatusReport(status).text
        #expect(text.contains("POLICY       PORT    BACKEND    SHARE  PACKETS\n"), "\(text)")
        #expect(text.contains("default/bar  tcp/80  local      90.0%  903\n"), "\(text)")
        #expect(text.contains("                     bar-paris  10.0%  97\n"), "\(text)")
        // The JSON the admin socket carries round-trips.
        let decoded = try AdminSocket.decoder().decode(AgentStatus.self, from: try AdminSocket.encoder().encode(status))
        #expect(decoded.policies == rows)
    }

    @Test func metricsCountPacketsPerPolicyAndBackendApartFromServices() throws {
        let metrics = AgentMetrics()
        let store = try Self.store(Self.state())
        let text = metrics.scrape(store: store, ready: true, dns: nil, counters: [
            "policy default/bar tcp/80 local": (packets: 900, bytes: 1),
            "policy default/bar tcp/80 bar-paris": (packets: 100, bytes: 1),
            "policy default/bar udp/53 bar-paris": (packets: 5, bytes: 1),
            "default/bar-paris": (packets: 3, bytes: 180),
        ])
        #expect(text.contains(#"mirror_agent_policy_packets_total{policy="default/bar", backend="bar-paris"} 105"#)
            || text.contains(#"mirror_agent_policy_packets_total{policy="default/bar",backend="bar-paris"} 105"#), "\(text)")
        #expect(text.contains(#"backend="local"} 900"#), "\(text)")
        #expect(!text.contains(#"service="policy"#), "policy counters are not services: \(text)")
        #expect(text.contains(#"mirror_agent_service_packets_total{service="default/bar-paris"} 3"#))
        // A backend gone from the counters loses its series.
        let later = metrics.scrape(store: store, ready: true, dns: nil, counters: ["policy default/bar tcp/80 local": (packets: 901, bytes: 1)])
        #expect(!later.contains("bar-paris\"} 105") && later.contains(#"backend="local"} 901"#), "\(later)")
    }
}
