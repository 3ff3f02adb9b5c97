import Foundation
import Testing
@testable import MirrorAgent
import NFTables
import MirrorModel
import MirrorFeed

/// UDP flows pinned to a target that goes away move with the change that removes it, in a
/// real kernel: a client sends one datagram every 50 ms from one source port (one conntrack
/// entry), and the responders answer with their own name.
@Suite(.serialized) struct StaleFlowTests {
    /// A bounded UDP client in the background: one socket, a datagram every 50 ms for at most
    /// `seconds`, each answer logged as `<seconds since start> <responder>`.
    final class UDPClient: @unchecked Sendable {
        let log: URL
        private let pid: Int32

        init(from namespace: TestNamespace, to address: String, port: Int, sourcePort: Int, seconds: Int = 8) throws {
            log = FileManager.default.temporaryDirectory.appendingPathComponent("udp-client-\(UUID().uuidString).log")
            let program = """
                import socket, sys, time
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("0.0.0.0", int(sys.argv[3])))
                s.settimeout(0.05)
                start = time.monotonic()
                with open(sys.argv[4], "w", buffering=1) as out:
                    while time.monotonic() - start < float(sys.argv[5]):
                        try:
                            s.sendto(b"ping", (sys.argv[1], int(sys.argv[2])))
                            data, _ = s.recvfrom(2048)
                            out.write("%.3f %s\\n" % (time.monotonic() - start, data.decode()))
                            time.sleep(0.05)
                        except OSError as error:
                            out.write("%.3f error\\n" % (time.monotonic() - start))
                            time.sleep(0.05)
                """
            pid = try NamespaceLab.launchPython(in: namespace, source: program,
                                                [address, "\(port)", "\(sourcePort)", log.path, "\(seconds)"]) ?? 0
        }

        deinit {
            if pid > 0 { kill(pid, SIGKILL) }
            try? FileManager.default.removeItem(at: log)
        }

        /// The answers so far: (seconds since the client started, responder).
        var answers: [(at: Double, from: String)] { lines.filter { $0.from != "error" } }

        /// Datagrams that got an error (ICMP port unreachable: refused) or no answer in time.
        var errors: Int { lines.count - answers.count }

        private var lines: [(at: Double, from: String)] {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { line in
                let parts = line.split(separator: " ")
                guard parts.count == 2, let at = Double(parts[0]) else { return nil }
                return (at, String(parts[1]))
            }
        }

        /// Waits (bounded) until `condition` holds for the answers.
        func wait(for condition: ([(at: Double, from: String)]) -> Bool, seconds: Double = 5) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if condition(answers) { return true }
                usleep(20_000)
            }
            return false
        }
    }

    /// London's state with UDP services: `dns-paris` (gateway mode over `gateways`), `udp-paris`
    /// (remote-discovery over `endpoints`), `keep-berlin` (gateway mode, never changed).
    static func state(gateways: [String], endpoints: [Endpoint], parisAlive: Bool = true) -> MirrorState {
        MirrorState(
            clusters: [
                Cluster(name: "paris", gateway: Gateway(addresses: gateways, alive: parisAlive), masquerade: true),
                Cluster(name: "berlin", gateway: Gateway(addresses: ["10.99.2.2"]), masquerade: true),
            ],
            services: [
                MirroredService(name: "dns", namespace: "default", cluster: "paris", mode: .gateway, ips: ["10.112.0.20"],
                                ports: [ServicePort(protocol: .udp, port: 53, targetPort: 5300, gatewayPort: 5300)]),
                MirroredService(name: "udp", namespace: "default", cluster: "paris", mode: .remoteDiscovery, ips: ["10.112.0.21"],
                                ports: [ServicePort(protocol: .udp, port: 53, targetPort: 5301)], endpoints: endpoints),
                MirroredService(name: "keep", namespace: "default", cluster: "berlin", mode: .gateway, ips: ["10.112.0.22"],
                                ports: [ServicePort(protocol: .udp, port: 53, targetPort: 5300, gatewayPort: 5300)]),
            ])
    }

    static func topology(_ label: String) throws -> TrafficTopology {
        let topology = try TrafficTopology(label)
        try topology.lab.serveUDP(topology.paris, "10.99.1.2", 5300, "gw-1")
        try topology.lab.serveUDP(topology.paris, "10.99.1.3", 5300, "gw-2")
        try topology.paris.exec(["ip", "addr", "add", "10.20.1.6/32", "dev", "eth0"])
        try topology.node.exec(["ip", "route", "replace", "10.20.1.6/32", "dev", "to-paris"])
        try topology.lab.serveUDP(topology.paris, "10.20.1.5", 5301, "pod-1")
        try topology.lab.serveUDP(topology.paris, "10.20.1.6", 5301, "pod-2")
        try topology.lab.serveUDP(topology.berlin, "10.99.2.2", 5300, "berlin")
        return topology
    }

    /// The conntrack entries of UDP flows to `address` in `namespace` (the conntrack tool only
    /// checks; the agent talks ctnetlink itself).
    static func flows(in namespace: TestNamespace, to address: String) throws -> Int {
        let output = try namespace.exec(["conntrack", "-L", "-p", "udp", "--orig-dst", address], allowFailure: true)
        return output.split(separator: "\n").filter { $0.hasPrefix("udp") }.count
    }

    /// Runs one change under a steady flow and returns how long after the change the flow's
    /// answers came from somewhere else (or stopped), printing it.
    static func measureMove(_ name: String, topology: TrafficTopology, harness: ComponentHarness, client: UDPClient,
                            change: MirrorState) async throws -> (before: String, after: [String], gap: Double) {
        #expect(client.wait(for: { $0.count >= 3 }), "\(name): the flow answers before the change")
        let pinned = client.answers.last?.from ?? "?"
        let changedAt = client.answers.last?.at ?? 0
        let start = Date()
        _ = try await harness.apply(change)
        let applied = Date().timeIntervalSince(start)
        _ = client.wait(for: { answers in answers.contains { $0.at > changedAt + applied + 0.3 } })
        let later = client.answers.filter { $0.at > changedAt + applied }
        let firstMoved = later.first { $0.from != pinned }
        let gap = (firstMoved?.at ?? .infinity) - changedAt - applied
        print("\(name): flow pinned to \(pinned); after the change (applied in \(String(format: "%.1f", applied * 1000)) ms) answers from \(Set(later.map(\.from)).sorted()), first one \(String(format: "%.0f", gap * 1000)) ms after")
        return (pinned, later.map(\.from), gap)
    }

    @Test func gatewayAddressRemovedMovesTheFlowAndLeavesOthersAlone() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let topology = try Self.topology("udpgw")
        let harness = try topology.makeHarness()
        let endpoints = [Endpoint(ip: "10.20.1.5")]
        _ = try await harness.apply(Self.state(gateways: ["10.99.1.2", "10.99.1.3"], endpoints: endpoints))
        let client = try UDPClient(from: topology.pod, to: "10.112.0.20", port: 53, sourcePort: 40000)
        let bystander = try UDPClient(from: topology.pod, to: "10.112.0.22", port: 53, sourcePort: 40001)
        #expect(bystander.wait(for: { $0.count >= 3 }))
        let bystanderFlows = try Self.flows(in: topology.node, to: "10.112.0.22")
        #expect(client.wait(for: { $0.count >= 3 }))
        let pinned = client.answers.last?.from
        let remaining = pinned == "gw-1" ? "10.99.1.3" : "10.99.1.2"
        let moved = try await Self.measureMove("gateway address removed", topology: topology, harness: harness, client: client,
                                               change: Self.state(gateways: [remaining], endpoints: endpoints))
        #expect(!moved.after.isEmpty && !moved.after.contains(moved.before), "every later answer comes from the remaining gateway: \(moved.after)")
        #expect(moved.gap < 0.5, "moved within one change (gap \(moved.gap) s)")
        await harness.component.drainFlowCleanups()
        #expect(try Self.flows(in: topology.node, to: "10.112.0.22") == bystanderFlows, "the unaffected flow keeps its entry")
        let statistics = await harness.component.flowStatistics()
        #expect(statistics?.deleted == 1 && statistics?.failures == 0, "one entry deleted: \(String(describing: statistics))")
        #expect(bystander.answers.suffix(3).allSatisfy { $0.from == "berlin" })
    }

    @Test func endpointUnreadyAndFederatedRemovalMoveTheFlow() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let topology = try Self.topology("udpep")
        let harness = try topology.makeHarness()
        let both = [Endpoint(ip: "10.20.1.5"), Endpoint(ip: "10.20.1.6")]
        _ = try await harness.apply(Self.state(gateways: ["10.99.1.2"], endpoints: both))
        let client = try UDPClient(from: topology.pod, to: "10.112.0.21", port: 53, sourcePort: 40002)
        #expect(client.wait(for: { $0.count >= 3 }))
        let pinned = client.answers.last?.from ?? "?"
        let unready = both.map { Endpoint(ip: $0.ip, ready: !(pinned == "pod-1" ? $0.ip == "10.20.1.5" : $0.ip == "10.20.1.6")) }
        let moved = try await Self.measureMove("endpoint unready", topology: topology, harness: harness, client: client,
                                               change: Self.state(gateways: ["10.99.1.2"], endpoints: unready))
        #expect(!moved.after.isEmpty && !moved.after.contains(moved.before), "answers from the ready endpoint only: \(moved.after)")
        #expect(moved.gap < 0.5)
    }

    @Test func clusterDeadDropsTheFlowSoItIsRefused() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let topology = try Self.topology("udpdead")
        let harness = try topology.makeHarness()
        let endpoints = [Endpoint(ip: "10.20.1.5")]
        _ = try await harness.apply(Self.state(gateways: ["10.99.1.2"], endpoints: endpoints))
        let client = try UDPClient(from: topology.pod, to: "10.112.0.20", port: 53, sourcePort: 40003)
        #expect(client.wait(for: { $0.count >= 3 }))
        _ = try await harness.apply(Self.state(gateways: ["10.99.1.2"], endpoints: endpoints, parisAlive: false))
        await harness.component.drainFlowCleanups()
        let flowsAfter = try Self.flows(in: topology.node, to: "10.112.0.20")
        let count = client.answers.count
        let errors = client.errors
        usleep(500_000)
        #expect(client.answers.count == count, "no answer from the dead cluster's gateway once the change is applied")
        #expect(client.errors > errors, "the flow's datagrams are refused instead")
        #expect(flowsAfter == 0, "the flow's entry is gone (its next packet is refused by the new rules)")
        // Back alive: the flow, refused meanwhile, reaches the gateway again.
        _ = try await harness.apply(Self.state(gateways: ["10.99.1.2"], endpoints: endpoints))
        #expect(client.wait(for: { $0.count > count }), "the flow answers again once the cluster is back")
    }
}
