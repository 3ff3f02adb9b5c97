import Foundation
import Testing
@testable import MirrorModel
@testable import MirrorFeed

/// Real feed server, real clients, loopback: the stream reproduces the state, resumes, and
/// starts over when it must.
@Suite struct FeedStreamTests {
    @Test func snapshotThenDeltasReproduceTheStateExactly() async throws {
        var state = FeedFixtures.state(services: 5)
        let feed = try await FeedHarness.start(state)
        let client = RecordingClient.plain(try feed.endpoint())
        #expect(await client.waitFor(state, revision: feed.hub.revision))

        // One endpoint-sized change: an added service, a changed port, a removed service.
        state.services.append(FeedFixtures.service(10))
        state.services[0].ports[0].port = 8080
        state.services.remove(at: 1)
        try await feed.publish(state)
        #expect(await client.waitFor(state, revision: feed.hub.revision))

        // A new cluster and a service that uses it in one edit (cluster upsert must go first),
        // then the cluster and its service removed together (service delete first).
        state.clusters.append(Cluster(name: "berlin", gateway: Gateway(addresses: ["10.99.2.2"])))
        state.services.append(FeedFixtures.service(20, cluster: "berlin"))
        try await feed.publish(state)
        #expect(await client.waitFor(state, revision: feed.hub.revision))
        state.clusters.removeAll { $0.name == "berlin" }
        state.services.removeAll { $0.cluster == "berlin" }
        try await feed.publish(state)
        #expect(await client.waitFor(state, revision: feed.hub.revision))

        // Everything travelled as deltas: one snapshot at the start, none since.
        #expect(feed.hub.metrics.watchesStarted("snapshot") == 1)
        #expect(feed.hub.metrics.render().contains("mirror_feed_snapshots_published_total 0"))
        #expect(client.latest?.state == state.normalized)
        await client.stop()
        await feed.stop()
    }

    @Test func aChangeNoDeltaOrderCanExpressIsSentAsASnapshot() async throws {
        var state = FeedFixtures.state(services: 2)
        let feed = try await FeedHarness.start(state)
        let client = RecordingClient.plain(try feed.endpoint())
        #expect(await client.waitFor(state))
        // Two services swap their ClusterIPs: no single upsert is valid first.
        let ip0 = state.services[0].ips
        state.services[0].ips = state.services[1].ips
        state.services[1].ips = ip0
        try await feed.publish(state)
        #expect(await client.waitFor(state, revision: feed.hub.revision))
        #expect(feed.hub.metrics.render().contains("mirror_feed_snapshots_published_total 1"))
        await client.stop()
        await feed.stop()
    }

    @Test func resumeAfterAClientDropGetsOnlyTheMissedDeltas() async throws {
        var state = FeedFixtures.state(services: 3)
        let feed = try await FeedHarness.start(state)
        let stateDirectory = try FeedFixtures.temporaryDirectory()
        let first = RecordingClient.plain(try feed.endpoint(), stateDirectory: stateDirectory)
        #expect(await first.waitFor(state, revision: feed.hub.revision))
        await first.stop()
        let before = feed.hub.revision

        state.services.append(FeedFixtures.service(7))
        try await feed.publish(state)
        state.services[0].ports[0].port = 81
        try await feed.publish(state)
        #expect(feed.hub.revision == before + 2)

        let eventsBefore = feed.hub.metrics.render()
        let second = RecordingClient.plain(try feed.endpoint(), stateDirectory: stateDirectory)
        #expect(await second.waitFor(state, revision: feed.hub.revision))
        #expect(feed.hub.metrics.watchesStarted("resume") == 1)
        #expect(feed.hub.metrics.watchesStarted("snapshot") == 1)
        // The first update is the persisted state; the resumed stream then applies the two
        // missed deltas and nothing else.
        #expect(second.all.first?.store.revision == before)
        #expect(eventsBefore.contains("mirror_feed_events_sent_total{type=\"snapshot\"} 1"))
        #expect(feed.hub.metrics.render().contains("mirror_feed_events_sent_total{type=\"snapshot\"} 1"))
        #expect(feed.hub.metrics.render().contains("mirror_feed_events_sent_total{type=\"upsertService\"} 2"))
        await second.stop()
        await feed.stop()
    }

    @Test func resumeAcrossAServerRestartGetsASnapshot() async throws {
        let state = FeedFixtures.state(services: 3)
        let feed = try await FeedHarness.start(state)
        let client = RecordingClient.plain(try feed.endpoint())
        #expect(await client.waitFor(state, revision: feed.hub.revision))
        let port = feed.port
        await feed.stop()

        // A new server instance on the same port, with the same revision number but other
        // content: the client must not trust its old revision.
        var other = state
        other.services.removeLast()
        let restarted = try await FeedHarness.start(other, port: port)
        #expect(restarted.hub.revision == feed.hub.revision)
        #expect(await client.waitFor(other, revision: restarted.hub.revision))
        #expect(restarted.hub.metrics.watchesStarted("snapshot") == 1)
        #expect(restarted.hub.metrics.watchesStarted("resume") == 0)
        await client.stop()
        await restarted.stop()
    }

    @Test func resumePastTheHistoryWindowGetsASnapshot() async throws {
        var state = FeedFixtures.state(services: 3)
        let feed = try await FeedHarness.start(state) { $0.historyCount = 2 }
        let stateDirectory = try FeedFixtures.temporaryDirectory()
        let first = RecordingClient.plain(try feed.endpoint(), stateDirectory: stateDirectory)
        #expect(await first.waitFor(state, revision: feed.hub.revision))
        await first.stop()
        for port in 81...84 {
            state.services[0].ports[0].port = port
            try await feed.publish(state)
        }
        let second = RecordingClient.plain(try feed.endpoint(), stateDirectory: stateDirectory)
        #expect(await second.waitFor(state, revision: feed.hub.revision))
        #expect(feed.hub.metrics.watchesStarted("snapshot") == 2)
        #expect(feed.hub.metrics.watchesStarted("resume") == 0)
        await second.stop()
        await feed.stop()
    }

    @Test func bookmarksKeepAnIdleConnectionAlive() async throws {
        let state = FeedFixtures.state(services: 1)
        let feed = try await FeedHarness.start(state) { $0.bookmarkInterval = .milliseconds(100) }
        let client = RecordingClient.plain(try feed.endpoint()) { $0.silenceTimeout = .milliseconds(800) }
        #expect(await client.waitFor(state))
        try await Task.sleep(for: .seconds(3))
        // Several silence timeouts passed; the stream is still the first one.
        #expect(feed.hub.metrics.watchesStarted("snapshot") + feed.hub.metrics.watchesStarted("resume") == 1)
        #expect(!feed.hub.metrics.render().contains("mirror_feed_events_sent_total{type=\"bookmark\"} 0"))
        #expect(feed.hub.metrics.watchers == 1)
        await client.stop()
        await feed.stop()
    }

    @Test func missingBookmarksTriggerAReconnect() async throws {
        let state = FeedFixtures.state(services: 1)
        let feed = try await FeedHarness.start(state) { $0.bookmarkInterval = .seconds(60) }
        let client = RecordingClient.plain(try feed.endpoint()) { $0.silenceTimeout = .milliseconds(300) }
        #expect(await client.waitFor(state))
        // The client drops the silent stream and resumes (the server is fine, only quiet).
        #expect(await eventually(timeout: .seconds(5)) { feed.hub.metrics.watchesStarted("resume") >= 2 })
        #expect(client.latest?.state == state.normalized)
        await client.stop()
        await feed.stop()
    }

    @Test func aBadFileEditPublishesNothing() async throws {
        var state = FeedFixtures.state(services: 2)
        let feed = try await FeedHarness.start(state)
        let client = RecordingClient.plain(try feed.endpoint())
        #expect(await client.waitFor(state, revision: feed.hub.revision))
        let revision = feed.hub.revision
        let updates = client.all.count

        // Not a document at all, then a duplicate ClusterIP: both rejected by the source.
        try FeedFixtures.write("{ this is not: [valid", to: feed.statePath)
        try await Task.sleep(for: .milliseconds(300))
        var duplicate = state
        duplicate.services[1].ips = duplicate.services[0].ips
        try FeedFixtures.write(duplicate, to: feed.statePath)
        try await Task.sleep(for: .milliseconds(300))
        #expect(feed.hub.revision == revision)
        #expect(feed.hub.currentState == state.normalized)
        #expect(client.all.count == updates)
        #expect(feed.hub.metrics.render().contains("mirror_feed_deltas_published_total 0"))

        // The next valid edit goes through.
        state.services.append(FeedFixtures.service(9))
        try await feed.publish(state)
        #expect(await client.waitFor(state, revision: revision + 1))
        await client.stop()
        await feed.stop()
    }

    @Test func persistedStateRestoresAfterARestartWithTheFeedDown() async throws {
        let state = FeedFixtures.state(services: 4)
        let feed = try await FeedHarness.start(state)
        let stateDirectory = try FeedFixtures.temporaryDirectory()
        let client = RecordingClient.plain(try feed.endpoint(), stateDirectory: stateDirectory)
        #expect(await client.waitFor(state, revision: feed.hub.revision))
        await client.stop()
        let port = feed.port
        await feed.stop()
        #expect(FileManager.default.fileExists(atPath: stateDirectory + "/" + FeedStateFile.fileName))
        #expect(!FileManager.default.fileExists(atPath: stateDirectory + "/" + FeedStateFile.fileName + ".tmp"))

        // The agent restarts while nothing listens: it serves the persisted state at once.
        let restarted = RecordingClient.plain(try FeedEndpoint(url: "http://127.0.0.1:\(port)"), stateDirectory: stateDirectory)
        #expect(await restarted.waitFor(state, timeout: .seconds(2)))
        #expect(restarted.all.first?.changes.addedServices.count == 4)
        try await Task.sleep(for: .milliseconds(300))
        #expect(restarted.latest?.state == state.normalized)
        await restarted.stop()
    }
}
