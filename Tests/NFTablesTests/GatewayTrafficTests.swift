import Foundation
import Logging
import Testing
@testable import MirrorAgent
import NFTables
import MirrorModel
import MirrorFeed

/// `mirror-agent gateway`'s tables in a real kernel, with real connections:
///
///     client   (10.60.0.2) ─┐
///                           ├─ gw (10.60.0.1 = gateway address | 10.61.0.1 | 10.20.0.1) ── pods (10.20.1.5, 10.20.1.6)
///     outsider (10.61.0.2) ─┘
///
/// Only 10.60.0.0/24 is allowed. The pods have no route back to the clients, so a reply only
/// arrives when the gateway masquerades.
@Suite(.serialized) struct GatewayTrafficTests {
    final class Topology: @unchecked Sendable {
        let client: TestNamespace
        let outsider: TestNamespace
        let gateway: TestNamespace
        let pods: TestNamespace
        private let lab = NamespaceLab()

        init(_ label: String) throws {
            client = try TestNamespace("\(label)-cli")
            outsider = try TestNamespace("\(label)-out")
            gateway = try TestNamespace("\(label)-gw")
            pods = try TestNamespace("\(label)-pods")
            try lab.link(gateway, "to-client", "10.60.0.1/24", client, "eth0", ["10.60.0.2/24"])
            try lab.link(gateway, "to-outsider", "10.61.0.1/24", outsider, "eth0", ["10.61.0.2/24"])
            try lab.link(gateway, "to-pods", "10.20.0.1/24", pods, "eth0", ["10.20.1.5/32", "10.20.1.6/32"])
            try gateway.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            try gateway.exec(["ip", "route", "add", "10.20.1.0/24", "dev", "to-pods"])
            try pods.exec(["ip", "route", "add", "10.20.0.0/24", "dev", "eth0"])
            try client.exec(["ip", "route", "add", "default", "via", "10.60.0.1"])
            try outsider.exec(["ip", "route", "add", "default", "via", "10.61.0.1"])
            try lab.serve(pods, "10.20.1.5", 8080, "bar-pod")
            try lab.serve(pods, "10.20.1.6", 9090, "baz-pod")
        }

        func curl(from namespace: TestNamespace, _ url: String, maxTime: Double = 3) throws -> (status: Int32, body: String, seconds: Double) {
            try lab.curl(from: namespace, url, maxTime: maxTime)
        }

        func rules() throws -> GatewayRules {
            let backend = try gateway.run { try KernelRulesetBackend() }
            let flows = try gateway.run { FlowCleaner(logger: Logger(label: "gateway-test")) }
            return GatewayRules(allowedSources: [try #require(IPPrefix("10.60.0.0/24"))], backend: backend, flows: flows)
        }

        func serveUDP(_ address: String, _ port: Int, _ name: String) throws {
            try lab.serveUDP(pods, address, port, name)
        }
    }

    /// Paris exports two services on one gateway address; their pods answer differently.
    static func exports(barReady: Bool = true) -> ExportsDocument {
        ExportsDocument(cluster: "paris", gatewayAddresses: ["10.60.0.1"], exports: [
            ExportedService(name: "bar", namespace: "default",
                            ports: [ExportedPort(name: "http", port: 80, targetPort: 8080, gatewayPort: 20001)],
                            endpoints: [ExportEndpoint(ip: "10.20.1.5", ready: barReady)]),
            ExportedService(name: "baz", namespace: "default",
                            ports: [ExportedPort(name: "http", port: 80, targetPort: 9090, gatewayPort: 20002)],
                            endpoints: [ExportEndpoint(ip: "10.20.1.6")]),
        ])
    }

    @Test func eachGatewayPortReachesItsOwnService() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let topology = try Topology("gwx")
        let rules = try topology.rules()
        let report = try await rules.apply(Self.exports())
        #expect(report.full && report.ports == 2)

        let bar = try topology.curl(from: topology.client, "http://10.60.0.1:20001/")
        #expect(bar.status == 0 && bar.body == "bar-pod", "client -> gateway port 20001: \(bar)")
        let baz = try topology.curl(from: topology.client, "http://10.60.0.1:20002/")
        #expect(baz.status == 0 && baz.body == "baz-pod", "client -> gateway port 20002: \(baz)")

        // Counters: one connection each, none refused yet.
        let counters = try topology.gateway.run { GatewayCounters.read(rules.role) }
        #expect(counters.steered["6/20001"]?.packets == 1, "\(counters)")
        #expect(counters.refusedTotal == 0, "\(counters)")

        // A restarted gateway with the same exports sends nothing.
        let restarted = try topology.rules()
        let again = try await restarted.apply(Self.exports())
        #expect(again.transaction.isEmpty, "restart with unchanged exports: \(again.transaction.summary)")
    }

    @Test func sourcesOutsideTheAllowListAreDroppedAndCounted() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let topology = try Topology("gwa")
        let rules = try topology.rules()
        _ = try await rules.apply(Self.exports())
        let refused = try topology.curl(from: topology.outsider, "http://10.60.0.1:20001/", maxTime: 1)
        #expect(refused.status == 28, "outsider gets no answer at all (dropped, curl times out): \(refused)")
        let counters = try topology.gateway.run { GatewayCounters.read(rules.role) }
        #expect((counters.refused["6/20001"]?.packets ?? 0) >= 1, "refused packets counted per port: \(counters)")
        #expect(counters.steered["6/20001"]?.packets == 0, "nothing steered for the outsider: \(counters)")
        let allowed = try topology.curl(from: topology.client, "http://10.60.0.1:20001/")
        #expect(allowed.status == 0 && allowed.body == "bar-pod", "the allowed client still gets through: \(allowed)")
    }

    @Test func aPortWithoutReadyEndpointsIsRefusedAtOnce() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let topology = try Topology("gwr")
        let rules = try topology.rules()
        _ = try await rules.apply(Self.exports())
        let change = try await rules.apply(Self.exports(barReady: false))
        #expect(!change.full && !change.transaction.isEmpty)
        let refused = try topology.curl(from: topology.client, "http://10.60.0.1:20001/")
        #expect(refused.status == 7 && refused.seconds < 1, "bar without ready pods is refused at once: \(refused)")
        let baz = try topology.curl(from: topology.client, "http://10.60.0.1:20002/")
        #expect(baz.status == 0 && baz.body == "baz-pod", "baz is untouched: \(baz)")
        _ = try await rules.apply(Self.exports())
        let back = try topology.curl(from: topology.client, "http://10.60.0.1:20001/")
        #expect(back.status == 0 && back.body == "bar-pod", "bar back with its pod ready: \(back)")
    }

    @Test func aUDPFlowToAnEndpointThatGoesAwayMovesAtOnce() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let topology = try Topology("gwu")
        try topology.serveUDP("10.20.1.5", 5300, "pod-1")
        try topology.serveUDP("10.20.1.6", 5300, "pod-2")
        func exports(_ endpoints: [String]) -> ExportsDocument {
            ExportsDocument(cluster: "paris", gatewayAddresses: ["10.60.0.1"], exports: [
                ExportedService(name: "dns", namespace: "default",
                                ports: [ExportedPort(name: "dns", protocol: .udp, port: 53, targetPort: 5300, gatewayPort: 20053)],
                                endpoints: endpoints.map { ExportEndpoint(ip: $0) }),
            ])
        }
        let rules = try topology.rules()
        _ = try await rules.apply(exports(["10.20.1.5", "10.20.1.6"]))
        let client = try StaleFlowTests.UDPClient(from: topology.client, to: "10.60.0.1", port: 20053, sourcePort: 40010)
        #expect(client.wait(for: { $0.count >= 3 }), "the flow answers through the gateway")
        let pinned = client.answers.last?.from ?? "?"
        let changedAt = client.answers.last?.at ?? 0
        _ = try await rules.apply(exports([pinned == "pod-1" ? "10.20.1.6" : "10.20.1.5"]))
        rules.flows?.drain()
        _ = client.wait(for: { answers in answers.contains { $0.at > changedAt + 0.4 } })
        let later = client.answers.filter { $0.at > changedAt + 0.15 }
        print("gateway endpoint removed: flow pinned to \(pinned); answers after the change from \(Set(later.map(\.from)).sorted())")
        #expect(!later.isEmpty && !later.contains { $0.from == pinned }, "the flow moved to the remaining endpoint: \(later)")
        #expect(rules.flows?.statistics.deleted == 1)
    }

    /// A one-endpoint change touches that service's elements only (the document is compared
    /// service by service), and a changed gateway address re-addresses every port.
    @Test func aChangeTranslatesOnlyTheServicesThatChanged() async throws {
        let rules = GatewayRules(allowedSources: [try #require(IPPrefix("10.0.0.0/8"))], backend: FakeRulesetBackend())
        _ = try await rules.apply(Self.exports())
        var moved = Self.exports()
        moved.exports[1].endpoints = [ExportEndpoint(ip: "10.20.1.7")]
        let change = try await rules.apply(moved)
        #expect(!change.full)
        #expect(change.transaction.summary.elementsAdded == 2 && change.transaction.summary.elementsDeleted == 2,
                "baz's DNAT element and its masquerade target: \(change.transaction.summary)")
        var readdressed = moved
        readdressed.gatewayAddresses = ["10.60.0.9"]
        let everything = try await rules.apply(readdressed)
        #expect(everything.transaction.summary.elementsAdded >= 4, "both ports under the new address: \(everything.transaction.summary)")
    }
}
