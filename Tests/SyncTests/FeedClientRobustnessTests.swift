import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import MirrorModel
@testable import MirrorFeed

/// A scripted feed server (raw bytes over loopback) sends the client bad events: nothing of
/// them is applied, the last good state stays in force, and the client resumes from it.
@Suite struct FeedClientRobustnessTests {
    static let epoch = "scripted-epoch"

    static func line(_ event: FeedEvent) throws -> String {
        String(buffer: try event.encodedLine())
    }

    @Test func malformedOrOutOfOrderEventsLeaveTheLastGoodStateInForce() async throws {
        let base = FeedFixtures.state(services: 2)
        var good = base
        good.services.append(FeedFixtures.service(5))
        var unknownCluster = FeedFixtures.service(6)
        unknownCluster.cluster = "nowhere"

        let scripts = [
            // Snapshot, one good delta, then a delta whose service has a number for a name.
            try Self.line(.snapshot(epoch: Self.epoch, revision: 5, state: base))
                + (try Self.line(.delta(revision: 6, .upsertService(FeedFixtures.service(5)))))
                + #"{"type":"upsertService","revision":7,"service":{"name":1,"namespace":"default"}}"# + "\n",
            // Resume, then a delta that skips revisions 7 and 8.
            try Self.line(.resumed(epoch: Self.epoch, revision: 6)) + (try Self.line(.delta(revision: 9, .deleteService(base.services[0].key)))),
            // Resume, then a well-formed delta the state cannot take (unknown cluster).
            try Self.line(.resumed(epoch: Self.epoch, revision: 6)) + (try Self.line(.delta(revision: 7, .upsertService(unknownCluster)))),
            // Resume, then an old delta replayed, then a line cut short.
            try Self.line(.resumed(epoch: Self.epoch, revision: 6)) + (try Self.line(.delta(revision: 6, .deleteService(base.services[0].key))))
                + #"{"type":"bookmark","revis"# + "\n",
            // Finally a well-behaved stream.
            try Self.line(.resumed(epoch: Self.epoch, revision: 6)) + (try Self.line(.bookmark(revision: 6))),
        ]
        let server = try await ScriptedFeedServer.start(scripts: scripts)
        let stateDirectory = try FeedFixtures.temporaryDirectory()
        let client = RecordingClient.plain(try FeedEndpoint(url: "http://127.0.0.1:\(server.port)"), stateDirectory: stateDirectory)

        #expect(await eventually { server.requests.count >= 5 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(client.latest?.revision == 6)
        #expect(client.latest?.state == good.normalized)
        // No update ever carried anything but the snapshot or the good delta.
        #expect(client.all.allSatisfy { $0.store.state == base.normalized || $0.store.state == good.normalized })
        // Every reconnect resumed from the last good revision of the same server instance.
        #expect(server.requests.dropFirst().allSatisfy { $0.contains("since=6") && $0.contains("epoch=\(Self.epoch)") })
        #expect(server.requests.first?.contains("since=") == false)
        // The persisted state is the last good one.
        #expect(try FeedStateFile(directory: stateDirectory).load()?.store.state == good.normalized)
        await client.stop()
        await server.stop()
    }

    @Test func aTruncatedSnapshotAppliesNothing() async throws {
        let state = FeedFixtures.state(services: 3)
        let full = try Self.line(.snapshot(epoch: Self.epoch, revision: 3, state: state))
        let server = try await ScriptedFeedServer.start(scripts: [String(full.dropLast(40)) + "\n", full])
        let client = RecordingClient.plain(try FeedEndpoint(url: "http://127.0.0.1:\(server.port)"))
        #expect(await client.waitFor(state, revision: 3))
        #expect(client.all.count == 1)
        await client.stop()
        await server.stop()
    }

    @Test func anHTTPErrorIsRetried() async throws {
        let state = FeedFixtures.state(services: 1)
        let server = try await ScriptedFeedServer.start(scripts: [try Self.line(.snapshot(epoch: Self.epoch, revision: 1, state: state))],
                                                        failFirst: 2)
        let client = RecordingClient.plain(try FeedEndpoint(url: "http://127.0.0.1:\(server.port)"))
        #expect(await client.waitFor(state, revision: 1))
        #expect(server.requests.count == 3)
        await client.stop()
        await server.stop()
    }
}

/// A loopback HTTP server that answers the n-th connection with the n-th script (the last
/// one repeats), verbatim, and keeps the connection open. Records each request line.
final class ScriptedFeedServer: Sendable {
    private let channel: any Channel
    private let recorded: NIOLockedValueBox<[String]>
    let port: Int

    var requests: [String] { recorded.withLockedValue { $0 } }

    private init(channel: any Channel, recorded: NIOLockedValueBox<[String]>) {
        self.channel = channel
        self.recorded = recorded
        self.port = channel.localAddress?.port ?? 0
    }

    /// - Parameter failFirst: how many connections get `503` before the scripts start.
    static func start(scripts: [String], failFirst: Int = 0) async throws -> ScriptedFeedServer {
        let recorded = NIOLockedValueBox<[String]>([])
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ScriptHandler(scripts: scripts, failFirst: failFirst, recorded: recorded))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return ScriptedFeedServer(channel: channel, recorded: recorded)
    }

    func stop() async {
        try? await channel.close()
    }

    private final class ScriptHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let scripts: [String]
        let failFirst: Int
        let recorded: NIOLockedValueBox<[String]>
        var answered = false

        init(scripts: [String], failFirst: Int, recorded: NIOLockedValueBox<[String]>) {
            self.scripts = scripts
            self.failFirst = failFirst
            self.recorded = recorded
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !answered else { return }
            answered = true
            let request = String(buffer: unwrapInboundIn(data)).split(separator: "\r\n").first.map(String.init) ?? ""
            let index = recorded.withLockedValue { $0.append(request); return $0.count - 1 }
            let response: String
            if index < failFirst {
                response = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
            } else {
                let body = scripts[min(index - failFirst, scripts.count - 1)]
                response = "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\n\r\n" + body
            }
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: response)), promise: nil)
        }
    }
}
