import Foundation
import MirrorModel
import NIOConcurrencyHelpers
import NIOHTTP1
import Testing
@testable import MirrorKubernetes

/// The Links' gateway probes, against real HTTP listeners on loopback addresses.
@Suite(.serialized)
struct GatewayProbeTests {
    static func probeSpec(port: Int, period: String = "100ms", failureThreshold: String = "3") -> [String: Any] {
        ["probeSpec": ["path": "/ready", "port": String(port), "period": period, "timeout": "300ms",
                       "failureThreshold": failureThreshold]]
    }

    /// A resolver whose answers the test changes.
    final class ChangingResolver: GatewayResolver {
        let answers = NIOLockedValueBox<[String: [String]]>([:])
        func addresses(of name: String) async throws -> [String] {
            guard let found = answers.withLockedValue({ $0[name] }) else {
                throw GatewayResolutionError(name: name, reason: "no such name")
            }
            return found
        }
    }

    @Test func failingProbesMarkTheGatewayDeadAndOneSuccessRevivesIt() async throws {
        let target = try await ProbeTarget.start()
        try await SourceLab.with { lab in
            try await lab.addCredentials("paris", server: lab.remote)
            try await lab.addLink("paris", gateway: "127.0.0.1", extra: Self.probeSpec(port: target.port))
            try await lab.remote.create(SourceLab.servicesPath("default"), SourceLab.service("bar"))
            let feed = try lab.start()
            #expect(await eventually { feed.service("default", "bar-paris")?.ips.isEmpty == false })
            // Starts alive and stays so while the target answers.
            #expect(feed.published.allSatisfy { $0.store.state.clusters.first?.gateway?.alive == true })
            #expect(await eventually { feed.link("paris")?.gateway?.addresses.first?.lastProbe != nil })

            target.answer(.serviceUnavailable)
            let failed = ContinuousClock.now
            #expect(await eventually(timeout: .seconds(5)) { feed.state?.clusters.first?.gateway?.alive == false })
            let detected = ContinuousClock.now - failed
            let status = try #require(feed.link("paris")?.gateway)
            #expect(status.alive == false)
            #expect(status.addresses.first?.lastError == "HTTP 503")
            #expect((status.addresses.first?.consecutiveFailures ?? 0) >= 3)
            // Three failures 100 ms apart, not one.
            #expect(detected >= .milliseconds(180), "dead after \(detected)")

            target.answer(.ok)
            #expect(await eventually(timeout: .seconds(5)) { feed.state?.clusters.first?.gateway?.alive == true })
            #expect(feed.link("paris")?.gateway?.addresses.first?.consecutiveFailures == 0)
            await feed.stop()
        }
        await target.stop()
    }

    @Test func onlyAnsweringAddressesArePublishedWhileOneAnswers() async throws {
        let target = try await ProbeTarget.start(hosts: ["127.0.0.1"])
        try await SourceLab.with { lab in
            try await lab.addCredentials("paris", server: lab.remote)
            try await lab.addLink("paris", gateway: "127.0.0.1,127.0.0.2", extra: Self.probeSpec(port: target.port))
            try await lab.remote.create(SourceLab.servicesPath("default"), SourceLab.service("bar"))
            let feed = try lab.start()
            // 127.0.0.2 refuses: after three failures only 127.0.0.1 carries traffic.
            #expect(await eventually(timeout: .seconds(5)) { feed.state?.clusters.first?.gateway?.addresses == ["127.0.0.1"] })
            #expect(feed.state?.clusters.first?.gateway?.alive == true)
            await target.stop()
            #expect(await eventually(timeout: .seconds(5)) { feed.state?.clusters.first?.gateway?.alive == false })
            // Dead: every address is published again, for the agents' reject rule.
            #expect(feed.state?.clusters.first?.gateway?.addresses == ["127.0.0.1", "127.0.0.2"])
            await feed.stop()
        }
    }

    @Test func gatewayNamesAreResolvedAgainAndFollowed() async throws {
        let target = try await ProbeTarget.start(hosts: ["127.0.0.1", "127.0.0.2", "127.0.0.3"])
        let resolver = ChangingResolver()
        resolver.answers.withLockedValue { $0["gw.paris.test"] = ["127.0.0.1"] }
        try await SourceLab.with { lab in
            try await lab.addCredentials("paris", server: lab.remote)
            try await lab.addLink("paris", gateway: "gw.paris.test", extra: Self.probeSpec(port: target.port))
            try await lab.remote.create(SourceLab.servicesPath("default"), SourceLab.service("bar"))
            let feed = try lab.start { options in
                options.gatewayResolver = resolver
                options.gatewayResolveInterval = .milliseconds(200)
            }
            #expect(await eventually { feed.state?.clusters.first?.gateway?.addresses == ["127.0.0.1"] })
            resolver.answers.withLockedValue { $0["gw.paris.test"] = ["127.0.0.2", "127.0.0.3"] }
            #expect(await eventually(timeout: .seconds(5)) { feed.state?.clusters.first?.gateway?.addresses == ["127.0.0.2", "127.0.0.3"] })
            // A lookup that fails keeps the last addresses and says why.
            resolver.answers.withLockedValue { $0["gw.paris.test"] = nil }
            #expect(await eventually(timeout: .seconds(5)) { feed.link("paris")?.gateway?.resolveError?.contains("gw.paris.test") == true })
            #expect(feed.state?.clusters.first?.gateway?.addresses == ["127.0.0.2", "127.0.0.3"])
            await feed.stop()
        }
        await target.stop()
    }

    @Test func aRestartedFeedPublishesTheGatewayAliveBeforeItsFirstProbe() async throws {
        let target = try await ProbeTarget.start()
        try await SourceLab.with { lab in
            try await lab.addCredentials("paris", server: lab.remote)
            // Probes every 30 s: the first state goes out long before any probe result.
            try await lab.addLink("paris", gateway: "127.0.0.1", extra: Self.probeSpec(port: target.port, period: "30s"))
            try await lab.remote.create(SourceLab.servicesPath("default"), SourceLab.service("bar"))
            for identity in ["feed-a", "feed-b"] {
                let feed = try lab.start(identity: identity)
                #expect(await eventually { feed.service("default", "bar-paris")?.ips.isEmpty == false })
                #expect(feed.published.allSatisfy { $0.store.state.clusters.first?.gateway?.alive == true },
                        "\(identity) published a dead gateway")
                await feed.stop()
            }
        }
        await target.stop()
    }

    @Test func theLinkStatusRecordsTheProbesAndARestartStartsFromIt() async throws {
        let target = try await ProbeTarget.start()
        target.answer(.serviceUnavailable)
        try await SourceLab.with { lab in
            try await lab.addCredentials("paris", server: lab.remote)
            try await lab.addLink("paris", gateway: "127.0.0.1", extra: Self.probeSpec(port: target.port))
            try await lab.remote.create(SourceLab.servicesPath("default"), SourceLab.service("bar"))
            let first = try lab.start()
            #expect(await eventually(timeout: .seconds(5)) {
                let link = try? await lab.localClient.get(LinkerdLink.self, namespace: SourceLab.linkNamespace, name: "paris")
                return link?.status?.gateway?.alive == false && link?.status?.servicesMirrored == 1
            })
            let link = try await lab.localClient.get(LinkerdLink.self, namespace: SourceLab.linkNamespace, name: "paris")
            #expect(link.status?.gateway?.addresses.first?.lastError == "HTTP 503")
            #expect(link.status?.remote?.connected == true)
            #expect(link.status?.observedBy == "feed-a")
            #expect(link.spec.targetClusterName == "paris")
            await first.stop()

            // Probes every 30 s: what the new feed publishes first comes from the status.
            try await lab.local.patch(SourceLab.linksPath + "/paris", ["spec": Self.probeSpec(port: target.port, period: "30s")])
            let second = try lab.start(identity: "feed-b")
            #expect(await eventually { second.service("default", "bar-paris")?.ips.isEmpty == false })
            #expect(second.published.allSatisfy { $0.store.state.clusters.first?.gateway?.alive == false },
                    "a gateway last seen dead was published alive before its first probe")
            await second.stop()
        }
        await target.stop()
    }

    @Test func goDurations() {
        #expect(GoDuration.parse("3s") == .seconds(3))
        #expect(GoDuration.parse("500ms") == .milliseconds(500))
        #expect(GoDuration.parse("1m30s") == .seconds(90))
        #expect(GoDuration.parse("1.5s") == .milliseconds(1500))
        #expect(GoDuration.parse("3") == nil)
        #expect(GoDuration.parse("") == nil)
        #expect(GoDuration.parse("2x") == nil)
    }
}
