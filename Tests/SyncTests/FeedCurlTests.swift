import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import MirrorModel
@testable import MirrorFeed

/// The stream as any HTTP client sees it: real curl, and a watcher that never reads.
@Suite struct FeedCurlTests {
    /// Decodes curl's output, one event per line.
    static func events(_ output: String) throws -> [FeedEvent] {
        try output.split(separator: "\n").map { try FeedEvent.decode(line: ByteBuffer(string: String($0))) }
    }

    @Test func curlWatchesTheStreamAndResumesBySince() async throws {
        var state = FeedFixtures.state(services: 2)
        let feed = try await FeedHarness.start(state) { $0.bookmarkInterval = .milliseconds(300) }
        let url = "http://127.0.0.1:\(feed.port)/v1/watch"

        // A plain watch: the snapshot, then bookmarks.
        let first = try runProgram("/usr/bin/curl", ["-sS", "-N", "--max-time", "1", "-D", "-", url])
        #expect(first.out.contains("content-type: application/x-ndjson"))
        let body = first.out.components(separatedBy: "\r\n\r\n").dropFirst().joined()
        let events = try Self.events(body)
        guard case let .snapshot(epoch, revision, served)? = events.first else {
            Issue.record("no snapshot first: \(body.prefix(200))")
            return
        }
        #expect(served == state.normalized)
        #expect(events.dropFirst().allSatisfy { $0 == .bookmark(revision: revision) })
        #expect(events.count >= 3)

        // Two edits, then resume from the first revision: exactly the missed deltas.
        state.services.append(FeedFixtures.service(3))
        try await feed.publish(state)
        state.services.removeFirst()
        try await feed.publish(state)
        let resumed = try Self.events(try runProgram("/usr/bin/curl", ["-sS", "-N", "--max-time", "0.5", "\(url)?since=\(revision)&epoch=\(epoch)"]).out)
        #expect(Array(resumed.prefix(3)) == [
            .resumed(epoch: epoch, revision: revision),
            .delta(revision: revision + 1, .upsertService(FeedFixtures.service(3))),
            .delta(revision: revision + 2, .deleteService(FeedFixtures.service(0).key)),
        ])
        #expect(resumed.dropFirst(3).allSatisfy { $0 == .bookmark(revision: revision + 2) })

        // Another epoch or a bad revision: a snapshot or a 400.
        let foreign = try Self.events(try runProgram("/usr/bin/curl", ["-sS", "-N", "--max-time", "0.3", "\(url)?since=\(revision)&epoch=other"]).out)
        #expect(foreign.first.map { if case .snapshot = $0 { true } else { false } } == true)
        let bad = try runProgram("/usr/bin/curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "\(url)?since=yesterday"])
        #expect(bad.out == "400")

        // Probes.
        #expect(try runProgram("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(feed.port)/healthz"]).out == "ok\n")
        #expect(try runProgram("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(feed.port)/readyz"]).out == "ready\n")
        let metrics = try runProgram("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(feed.port)/metrics"]).out
        #expect(metrics.contains("mirror_feed_revision \(revision + 2)"))
        #expect(metrics.contains("# TYPE mirror_feed_bytes_sent_total counter"))
        await feed.stop()
    }

    @Test func aWatcherThatStopsReadingIsCut() async throws {
        var state = FeedFixtures.state(services: 1)
        let feed = try await FeedHarness.start(state) { $0.maxWatcherBacklog = 256 << 10 }
        // A client that sends its request and never reads: the kernel buffers fill, then the
        // server's backlog, then the server cuts it.
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.so_rcvbuf), value: 4096)
            .channelOption(.autoRead, value: false)
            .connect(host: "127.0.0.1", port: feed.port).get()
        try await channel.writeAndFlush(ByteBuffer(string: "GET /v1/watch HTTP/1.1\r\nhost: x\r\n\r\n")).get()
        #expect(await eventually { feed.hub.metrics.watchers == 1 })
        // ~40 KiB per delta (a service with 400 endpoints), published straight to the hub.
        for round in 0..<200 where feed.hub.metrics.watchersCut == 0 {
            let service = FeedFixtures.flatService(round % 2, endpoints: 400 + round)
            state.services.removeAll { $0.name == service.name }
            state.services.append(service)
            try feed.hub.publish([.upsertService(service)], resulting: state.normalized)
        }
        #expect(await eventually(timeout: .seconds(5)) { feed.hub.metrics.watchersCut == 1 && feed.hub.metrics.watchers == 0 })
        try? await channel.close()
        await feed.stop()
    }

    @Test func snapshotsInFlightAreBoundedAndReleased() async throws {
        // A state of several MiB (more than the kernel buffers), so a snapshot to a client
        // that does not read stays in flight. Published straight to a hub: parsing such a
        // file in a debug build is slow and beside the point here.
        let big = MirrorState(clusters: FeedFixtures.state(services: 0).clusters,
                              services: (0..<2500).map { FeedFixtures.flatService($0, endpoints: 40) })
        var configuration = FeedHub.Configuration()
        configuration.maxSnapshotBytesInFlight = 1
        let hub = FeedHub(configuration: configuration)
        try hub.publishSnapshot(big)
        let server = try await FeedServer(hub: hub, host: "127.0.0.1", port: 0, tls: nil, logger: FeedFixtures.logger)
        let port = server.localAddress?.port ?? 0
        let feed = (hub: hub, port: port)
        let url = "http://127.0.0.1:\(port)/v1/watch"
        let stuck = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.so_rcvbuf), value: 4096)
            .channelOption(.autoRead, value: false)
            .connect(host: "127.0.0.1", port: feed.port).get()
        try await stuck.writeAndFlush(ByteBuffer(string: "GET /v1/watch HTTP/1.1\r\nhost: x\r\n\r\n")).get()
        #expect(await eventually { feed.hub.snapshotBytesInFlight > 0 })

        // The budget is spent: the next snapshot is refused with 503 (clients retry).
        let refused = try runProgram("/usr/bin/curl", ["-sS", "-o", "/dev/null", "-D", "-", "--max-time", "2", url])
        #expect(refused.out.hasPrefix("HTTP/1.1 503"))
        #expect(refused.out.lowercased().contains("retry-after: 1"))

        // The stuck client goes away: its snapshot no longer counts, and watches start again.
        try await stuck.close()
        #expect(await eventually { feed.hub.snapshotBytesInFlight == 0 })
        let served = try runProgram("/usr/bin/curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "1", url])
        #expect(served.out == "200")
        await server.shutdown()
    }
}
