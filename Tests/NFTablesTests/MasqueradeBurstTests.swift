import Foundation
import Testing
@testable import MirrorAgent
import MirrorModel
import MirrorFeed

/// Masquerading with random source ports: a burst of new UDP flows from one pod to one
/// gateway port, all through the same masquerade, loses nothing to conntrack insert races.
@Suite(.serialized) struct MasqueradeBurstTests {
    @Test func aBurstOfNewFlowsToOneGatewayPortHasNoInsertFailures() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let topology = try StaleFlowTests.topology("burst")
        let harness = try topology.makeHarness()
        _ = try await harness.apply(StaleFlowTests.state(gateways: ["10.99.1.2"], endpoints: [Endpoint(ip: "10.20.1.5")]))
        let rules = try topology.node.exec(["nft", "list", "chain", "ip", "mirror-agent", "nat-postrouting"])
        #expect(rules.contains("masquerade fully-random"), "\(rules)")

        // 2,000 flows (one socket each), sent as fast as python can, then every answer read.
        let program = """
            import socket, select, time
            sockets = {}
            poller = select.poll()
            for _ in range(2000):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.setblocking(False)
                sockets[s.fileno()] = s
                poller.register(s, select.POLLIN)
            for s in sockets.values():
                s.sendto(b"ping", ("10.112.0.20", 53))
            answered, deadline = set(), time.monotonic() + 5
            while len(answered) < len(sockets) and time.monotonic() < deadline:
                for fd, _ in poller.poll(200):
                    try:
                        sockets[fd].recv(64)
                        answered.add(fd)
                        poller.unregister(fd)
                    except OSError:
                        pass
            print(len(answered))
            """
        let answered = Int(try topology.pod.exec(["python3", "-c", program]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        let statistics = try topology.node.exec(["conntrack", "-S"])
        let insertFailed = statistics.split(separator: "\n").reduce(0) { total, line in
            let field = line.split(separator: " ").first { $0.hasPrefix("insert_failed=") }
            return total + (field.flatMap { Int($0.dropFirst("insert_failed=".count)) } ?? 0)
        }
        print("burst of 2000 new UDP flows through one masquerade: \(answered) answered, insert_failed \(insertFailed)")
        #expect(insertFailed == 0, "\(statistics)")
        #expect(answered == 2000)
    }
}
