import Foundation
import NIOConcurrencyHelpers
import Testing
@testable import MirrorModel
@testable import MirrorFeed

/// Traffic policies through the feed: the publisher orders policy deltas around the services
/// they name (each delta valid on its own), a real server streams them to a real
/// ``FeedClient``, and the client persists them.
@Suite struct TrafficPolicyFeedTests {
    let key = PolicyKey(namespace: "default", name: "svc-0")
    let paris0 = ServiceKey(namespace: "default", mirroredName: "svc-0-paris")
    let berlin0 = ServiceKey(namespace: "default", mirroredName: "svc-0-berlin")

    /// The deltas the publisher finds from `old` to `new`, checked to lead there.
    func deltas(from old: MirrorState, to new: MirrorState) throws -> [MirrorDelta]? {
        var before = MirrorStore()
        try before.applySnapshot(old, revision: 1)
        var after = before
        let changes = try after.applySnapshot(new, revision: 2)
        guard let deltas = FeedPublisher.deltas(from: before, to: after, changes: changes) else { return nil }
        var replay = before
        for delta in deltas { try replay.apply(delta, revision: replay.revision + 1) }
        #expect(replay.state == new.normalized, "the deltas lead to the new state")
        return deltas
    }

    @Test func aPolicyAndTheServicesItNamesDeletedTogether() throws {
        let old = PolicyFixtures.state()
        var new = old
        new.policies = []
        new.services.removeAll { $0.name == "svc-0" }
        let found = try #require(try deltas(from: old, to: new))
        #expect(found == [.deletePolicy(key), .deleteService(berlin0), .deleteService(paris0)], "the policy goes first")
    }

    @Test func aServiceDeleteWaitsForThePolicyThatStopsNamingIt() throws {
        let old = PolicyFixtures.state()
        var new = old
        new.policies[0].failover = ["svc-0-paris"]
        new.services.removeAll { $0.key == berlin0 }
        #expect(try deltas(from: old, to: new) == [.upsertPolicy(new.policies[0]), .deleteService(berlin0)])
    }

    @Test func aPolicyComesAfterTheClusterAndServiceItNames() throws {
        let old = PolicyFixtures.state()
        var new = old
        new.clusters.append(Cluster(name: "rome", gateway: Gateway(addresses: ["10.99.7.2"])))
        var rome = FeedFixtures.service(0, cluster: "rome")
        rome.ips = ["10.115.0.1"]
        new.services.append(rome)
        new.policies[0].backends.append(PolicyBackend(mirror: "svc-0-rome", weight: 10))
        var second = PolicyFixtures.policy("svc-1", ip: "10.96.0.2")
        second.backends = [PolicyBackend(mirror: "svc-0-rome", weight: 1)]
        second.failover = []
        new.policies.append(second)
        #expect(try deltas(from: old, to: new) == [
            .upsertCluster(new.clusters[2]), .upsertService(rome), .upsertPolicy(new.policies[0]), .upsertPolicy(second),
        ])
    }

    @Test func aPolicysAddressTakenByAMirrorAfterThePolicyGoes() throws {
        let old = PolicyFixtures.state()
        var new = old
        new.policies = []
        var service = FeedFixtures.service(5)
        service.ips = ["10.96.0.1"]
        new.services.append(service)
        #expect(try deltas(from: old, to: new) == [.deletePolicy(key), .upsertService(service)])
    }

    @Test func aPolicyAndItsMirrorsMovingPortTogetherIsASnapshot() throws {
        let old = PolicyFixtures.state()
        var new = old
        new.policies[0].ports = [PolicyPort(name: "http", port: 81)]
        for index in new.services.indices where new.services[index].name == "svc-0" {
            new.services[index].ports = [ServicePort(name: "http", port: 81)]
        }
        #expect(try deltas(from: old, to: new) == nil, "no single delta is valid first")
    }

    /// The publisher over a scripted source: policy changes go out as deltas, never as a
    /// snapshot, and a client applying the stream ends with the source's state.
    @Test func thePublisherSendsPolicyChangesAsDeltas() async throws {
        let first = PolicyFixtures.state()
        var flipped = first
        flipped.policies[0].localReady = false
        var gone = flipped
        gone.policies = []
        gone.services.removeAll { $0.name == "svc-0" }
        let states = [first, flipped, gone]
        let hub = FeedHub()
        let source = FeedPublisherTests.ScriptedSource(states: states, hub: hub)
        try await FeedPublisher(hub: hub, source: source, logger: FeedFixtures.logger).run()
        #expect(source.seen.withLockedValue { $0 } == states.map { Optional($0.normalized) })
        #expect(hub.revision == 5)  // the snapshot, one upsertPolicy, then deletePolicy and two deleteServices
        let metrics = hub.metrics.render()
        #expect(metrics.contains("mirror_feed_deltas_published_total 4\n"))
        #expect(metrics.contains("mirror_feed_snapshots_published_total 0\n"))
    }

    /// A real server and client on loopback: policies arrive with the snapshot, their changes
    /// as single deltas, and the client's persisted state keeps them.
    @Test func theStreamCarriesPolicyDeltasToAClient() async throws {
        var state = PolicyFixtures.state()
        let feed = try await FeedHarness.start(state)
        let stateDirectory = try FeedFixtures.temporaryDirectory()
        let client = RecordingClient.plain(try feed.endpoint(), stateDirectory: stateDirectory)
        #expect(await client.waitFor(state, revision: feed.hub.revision))
        #expect(client.latest?.policies[key] == PolicyFixtures.policy())

        // The local pods went away: one changed policy, as one delta.
        state.policies[0].localReady = false
        try await feed.publish(state)
        #expect(await client.waitFor(state, revision: feed.hub.revision))
        #expect(client.all.last?.changes.changedPolicies == [key])

        // A second policy added, then the first one and the services it names removed in one edit.
        state.policies.append(PolicyFixtures.policy("svc-1", ip: "10.96.0.2"))
        try await feed.publish(state)
        #expect(await client.waitFor(state, revision: feed.hub.revision))
        state.policies.removeAll { $0.name == "svc-1" }
        state.policies[0].failover = ["svc-0-paris"]
        state.services.removeAll { $0.key == berlin0 }
        try await feed.publish(state)
        #expect(await client.waitFor(state, revision: feed.hub.revision))

        let metrics = feed.hub.metrics.render()
        #expect(metrics.contains("mirror_feed_snapshots_published_total 0"), "every change went out as deltas")
        #expect(metrics.contains("mirror_feed_events_sent_total{type=\"upsertPolicy\"} 3"))
        #expect(metrics.contains("mirror_feed_events_sent_total{type=\"deletePolicy\"} 1"))
        #expect(feed.hub.metrics.watchesStarted("snapshot") == 1)
        await client.stop()

        // The persisted state holds the policies the client last applied.
        let saved = try #require(try FeedStateFile(directory: stateDirectory).load())
        #expect(saved.store.revision == feed.hub.revision)
        #expect(saved.store.state == state.normalized, "\(saved.store.state)\n\(state.normalized)")
        await feed.stop()
    }
}
