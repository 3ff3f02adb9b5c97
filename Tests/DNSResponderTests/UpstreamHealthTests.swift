import NIOCore
import Testing
@testable import DNSResponder

@Suite("per-upstream health, against a real unbound and a dead address")
struct UpstreamHealthTests {
    @Test("the dead upstream shows timeouts and turns unhealthy; the live one answers with a latency")
    func deadAndLive() async throws {
        let unbound = try UnboundServer(localData: (0..<4).map { "host\($0).example.test. 300 IN A 192.0.2.\($0 + 10)" })
        defer { unbound.stop() }
        // Nothing listens on the dead port: queries to it go unanswered.
        let deadPort = freePort()
        let fixture = try await ServerFixture.start(upstreams: [deadPort, unbound.port], timeout: .milliseconds(1500))
        defer { Task { await fixture.server.close() } }

        let before = await fixture.server.statistics().upstreams
        #expect(before.map(\.upstream) == ["127.0.0.1:\(deadPort)", "127.0.0.1:\(unbound.port)"])
        #expect(before.allSatisfy { $0.healthy && $0.queriesSent == 0 })

        // Distinct names, so neither the cache nor joining identical queries hides a failure.
        for index in 0..<DNSUpstreamHealth.unhealthyAfter {
            let answer = try fixture.dig(["host\(index).example.test"])
            #expect(answer.contains("192.0.2.\(index + 10)"), "host\(index) not answered through the live upstream:\n\(answer)")
        }

        let after = await fixture.server.statistics().upstreams
        try #require(after.count == 2)
        let dead = after[0]
        let live = after[1]
        #expect(dead.queriesSent == UInt64(DNSUpstreamHealth.unhealthyAfter))
        #expect(dead.timeouts == UInt64(DNSUpstreamHealth.unhealthyAfter))
        #expect(dead.answers == 0)
        #expect(dead.consecutiveFailures == DNSUpstreamHealth.unhealthyAfter)
        #expect(!dead.healthy)
        #expect(live.queriesSent == UInt64(DNSUpstreamHealth.unhealthyAfter))
        #expect(live.answers == UInt64(DNSUpstreamHealth.unhealthyAfter))
        #expect(live.timeouts == 0 && live.errors == 0)
        #expect(live.healthy)
        #expect(live.latencyMicroseconds > 0 && live.latencyMicroseconds < 1_500_000)
    }

    @Test("a refused TCP connection counts as an error, a truncated UDP answer as a TCP retry")
    func errorsAndTruncation() async throws {
        let txt = (0..<6).map { _ in "\"" + String(repeating: "x", count: 250) + "\"" }.joined(separator: " ")
        let unbound = try UnboundServer(localData: ["huge.example.test. 300 IN TXT \(txt)", "huge2.example.test. 300 IN TXT \(txt)"])
        defer { unbound.stop() }
        let deadPort = freePort()
        let fixture = try await ServerFixture.start(upstreams: [deadPort, unbound.port], timeout: .milliseconds(1500))
        defer { Task { await fixture.server.close() } }

        // A TCP client: forwarded over TCP; the dead port refuses the connection at once.
        let overTCP = try fixture.dig(["+tcp", "huge.example.test", "TXT"])
        #expect(overTCP.contains("ANSWER: 1"))
        // A UDP client: the dead port times out, unbound truncates (1.5 KB), asked again over TCP.
        let overUDP = try fixture.dig(["+ignore", "huge2.example.test", "TXT"])
        #expect(digFlags(overUDP).contains("tc"))

        let health = await fixture.server.statistics().upstreams
        try #require(health.count == 2)
        let dead = health[0]
        let live = health[1]
        #expect(dead.queriesSent == 2)
        #expect(dead.errors == 1)
        #expect(dead.timeouts == 1)
        #expect(dead.consecutiveFailures == 2)
        #expect(dead.healthy)  // two failures are not yet enough
        #expect(live.queriesSent == 3)  // huge over TCP, huge2 over UDP then TCP
        #expect(live.truncatedRetries == 1)
        #expect(live.answers == 2)
        #expect(live.errors == 0 && live.timeouts == 0)
    }
}
