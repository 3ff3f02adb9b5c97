import Foundation
import Testing
@testable import MirrorAgent
import NFTables
import MirrorModel
import MirrorFeed

/// Real connections through the programmed node: curl from a pod namespace (prerouting) and
/// from the node itself (output) to mirrored ClusterIPs.
@Suite(.serialized) struct TrafficTests {
    @Test func gatewaySingleAndSeveralAddresses() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let topology = try TrafficTopology("gw")
        let harness = try topology.makeHarness()
        try await topology.program(harness, TrafficTopology.state())
        let single = try topology.curl(from: topology.pod, "http://10.112.0.10/")
        #expect(single.status == 0 && single.body == "paris-gw-1", "pod -> bar: \(single)")
        let fromNode = try topology.curl(from: topology.node, "http://10.112.0.10/")
        #expect(fromNode.status == 0 && fromNode.body == "paris-gw-1", "node -> bar: \(fromNode)")

        // `dump --nft` reads the counters back from the kernel: two connections, two NATed packets.
        let backend = Unchecked(try topology.node.run { try KernelRulesetBackend() })
        let report = RulesetReport(try backend.value.read(MirrorTables.tableIDs))
        let bar = report.lines.first { $0.service == "default/bar-paris" }
        #expect(bar?.destination == "10.99.1.2:4143", "\(report.text)")
        #expect(bar?.counter?.packets == 2, "\(report.text)")
        #expect(report.text.contains("default/foo-berlin\n  10.112.0.30 tcp/80 -> 10.99.2.2:4143  packets 0 bytes 0"), "\(report.text)")

        try await topology.program(harness, TrafficTopology.state(parisGateways: ["10.99.1.2", "10.99.1.3"]))
        var seen: Set<String> = []
        for _ in 0 ..< 40 where seen.count < 2 {
            let reply = try topology.curl(from: topology.pod, "http://10.112.0.10/")
            #expect(reply.status == 0, "pod -> bar over two gateways: \(reply)")
            seen.insert(reply.body)
        }
        #expect(seen == ["paris-gw-1", "paris-gw-2"], "connections spread over both gateway addresses")
    }

    @Test func remoteDiscoveryAndFederated() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let topology = try TrafficTopology("flat")
        let harness = try topology.makeHarness()
        try await topology.program(harness, TrafficTopology.state())
        let flat = try topology.curl(from: topology.pod, "http://10.112.0.11/")
        #expect(flat.status == 0 && flat.body == "paris-pod", "pod -> baz (remote pod): \(flat)")

        var seen: Set<String> = []
        for _ in 0 ..< 40 where seen.count < 2 {
            let reply = try topology.curl(from: topology.pod, "http://10.112.0.12/")
            #expect(reply.status == 0, "pod -> web-federated: \(reply)")
            seen.insert(reply.body)
        }
        #expect(seen == ["paris-pod", "berlin-pod"], "federated connections reach both clusters")
    }

    @Test func deadTargetIsRefusedAtOnce() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let topology = try TrafficTopology("dead")
        let harness = try topology.makeHarness()
        try await topology.program(harness, TrafficTopology.state())
        let alive = try topology.curl(from: topology.pod, "http://10.112.0.30/")
        #expect(alive.status == 0 && alive.body == "berlin-gw", "pod -> foo while berlin is alive: \(alive)")

        try await topology.program(harness, TrafficTopology.state(berlinAlive: false))
        for client in [topology.pod, topology.node] {
            let refused = try topology.curl(from: client, "http://10.112.0.30/")
            #expect(refused.status == 7, "curl exit 7 = connection refused (TCP reset): \(refused)")
            #expect(refused.seconds < 1, "refused immediately, not timed out: \(refused.seconds) s")
        }
        // Counters show the refused packets against the service.
        let report = try topology.node.exec(["nft", "list", "set", "ip", "mirror-agent", "rejected-services"])
        #expect(report.contains("comment \"default/foo-berlin\""), "\(report)")
        #expect(!report.contains("packets 0 "), "the reject element counted the refused SYNs: \(report)")
    }
}
