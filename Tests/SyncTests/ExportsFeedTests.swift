import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import MirrorModel
@testable import MirrorFeed

/// The gateways' stream, `/v1/exports`: a real feed server with an exports hub, real
/// ``ExportsFeedClient``s and curl over loopback (plain HTTP, and mutual TLS with the
/// openssl-made ``TestPKI``).
@Suite struct ExportsFeedTests {
    /// `paris` exports `default/bar` (port 80 → 8080) on gateway port `gatewayPort`, with one
    /// endpoint at `endpoint`.
    static func document(endpoint: String = "10.20.1.5", gatewayPort: Int = 20001) -> ExportsDocument {
        var document = ExportsDocumentTests.exampleValue
        document.exports[0].endpoints = [ExportEndpoint(ip: endpoint)]
        document.exports[0].ports[0].gatewayPort = gatewayPort
        return document
    }

    @Test func aClientFollowsThePublishedDocument() async throws {
        let feed = try await ExportsFeedHarness.start(bookmarkInterval: .milliseconds(100))
        let first = Self.document()
        try feed.exportsHub.publishExports(first)
        let client = RecordingExportsClient(try feed.endpoint())
        #expect(await eventually { client.documents == [first] })

        // The endpoint moves: the next snapshot reaches the open stream.
        let moved = Self.document(endpoint: "10.20.1.6")
        try feed.exportsHub.publishExports(moved)
        #expect(feed.exportsHub.revision == 2)
        #expect(await eventually { client.documents == [first, moved] })

        // Several bookmarks later the client still holds the first stream (it accepted every
        // bookmark at its revision) and has delivered nothing twice.
        try await Task.sleep(for: .milliseconds(600))
        #expect(client.documents == [first, moved])
        #expect(client.rejections.isEmpty)
        #expect(feed.exportsHub.metrics.watchesStarted("snapshot") == 1)
        #expect(feed.exportsHub.metrics.watchesStarted("resume") == 0)
        #expect(feed.exportsHub.metrics.watchers == 1)
        await client.stop()
        await feed.stop()
    }

    @Test func withMutualTLSTheClientAndCurlReadTheExports() async throws {
        let pki = try TestPKI.shared()
        let feed = try await ExportsFeedHarness.start(tls: pki.serverFiles, bookmarkInterval: .milliseconds(300))
        let first = Self.document()
        try feed.exportsHub.publishExports(first)
        let client = RecordingExportsClient(try feed.endpoint(scheme: "https"), tls: pki.clientFiles)
        #expect(await eventually { client.documents == [first] })
        let moved = Self.document(endpoint: "10.20.1.7")
        try feed.exportsHub.publishExports(moved)
        #expect(await eventually { client.documents == [first, moved] })

        // curl with the client certificate sees the current document as a snapshot line.
        let url = "https://127.0.0.1:\(feed.port)\(ExportsEvent.path)"
        let curl = try runProgram("/usr/bin/curl", ["-sS", "-N", "--max-time", "3", "--cacert", pki.ca, "--cert", pki.clientCert,
                                                    "--key", pki.clientKey, url])
        let lines = curl.out.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("{\"type\":\"snapshot\"") == true)
        #expect(lines.first?.contains("\"exports\":") == true)
        let events = try lines.map { try ExportsEvent.decode(line: ByteBuffer(string: $0)) }
        #expect(events.first == .snapshot(epoch: feed.exportsHub.epoch, revision: 2, exports: moved))
        #expect(events.dropFirst().allSatisfy { $0 == .bookmark(revision: 2) })

        // Without a client certificate the handshake fails and nothing is served.
        let refused = try runProgram("/usr/bin/curl", ["-sS", "-N", "--max-time", "2", "--cacert", pki.ca, url])
        #expect(refused.status != 0)
        #expect(!refused.out.contains("snapshot"))
        #expect(feed.exportsHub.metrics.watchesStarted("snapshot") == 2)
        await client.stop()
        await feed.stop()
    }

    @Test func aDocumentOutsideTheClientsGatewayPortRangeIsRefused() async throws {
        let feed = try await ExportsFeedHarness.start()
        let stateDirectory = try FeedFixtures.temporaryDirectory()
        let good = Self.document(gatewayPort: 20001)
        try feed.exportsHub.publishExports(good)
        let client = RecordingExportsClient(try feed.endpoint(), stateDirectory: stateDirectory,
                                            gatewayPorts: try #require(GatewayPortRange(lower: 20000, upper: 20999)))
        #expect(await eventually { client.documents == [good] })
        #expect(await eventually { (try? ExportsFeedHarness.persisted(in: stateDirectory))?.revision == 1 })

        // The feed itself serves any port; this gateway's range ends at 20999.
        try feed.exportsHub.publishExports(Self.document(endpoint: "10.20.1.9", gatewayPort: 25000))
        #expect(await eventually { !client.rejections.isEmpty })
        let message = try #require(client.rejections.first)
        #expect(message.contains("ports[0].gatewayPort"), "\(message)")
        #expect(message.contains("25000 is outside the gateway port range 20000-20999"), "\(message)")
        // The connection was dropped and retried (the retry gets the same document, refused
        // again); nothing new was delivered, and the persisted document is still the good one.
        #expect(await eventually { feed.exportsHub.metrics.watchesStarted("snapshot") >= 2 })
        try await Task.sleep(for: .milliseconds(300))
        #expect(client.documents == [good])
        let persisted = try ExportsFeedHarness.persisted(in: stateDirectory)
        #expect(persisted.exports == good)
        #expect(persisted.revision == 1)

        // The next document inside the range goes through.
        let fixed = Self.document(endpoint: "10.20.1.9", gatewayPort: 20002)
        try feed.exportsHub.publishExports(fixed)
        #expect(await eventually { client.documents == [good, fixed] })
        #expect(await eventually { (try? ExportsFeedHarness.persisted(in: stateDirectory))?.revision == 3 })
        await client.stop()
        await feed.stop()
    }

    @Test func aRestartedClientServesThePersistedDocumentThenResumes() async throws {
        let feed = try await ExportsFeedHarness.start(bookmarkInterval: .milliseconds(100))
        let stateDirectory = try FeedFixtures.temporaryDirectory()
        let first = Self.document()
        try feed.exportsHub.publishExports(first)
        let before = RecordingExportsClient(try feed.endpoint(), stateDirectory: stateDirectory)
        #expect(await eventually { before.documents == [first] })
        await before.stop()
        let file = stateDirectory + "/exports-state.json"
        #expect(FileManager.default.fileExists(atPath: file))
        #expect(!FileManager.default.fileExists(atPath: file + ".tmp"))
        let persisted = try ExportsFeedHarness.persisted(in: stateDirectory)
        #expect(persisted.epoch == feed.exportsHub.epoch)
        #expect(persisted.revision == 1)

        // The restarted client hands on the persisted document before it has even connected
        // (no watch had started beyond the first client's), then resumes at revision 1.
        let metrics = feed.exportsHub.metrics
        let after = RecordingExportsClient(try feed.endpoint(), stateDirectory: stateDirectory) {
            metrics.watchesStarted("snapshot") + metrics.watchesStarted("resume")
        }
        #expect(await eventually { after.documents == [first] })
        #expect(after.deliveries.first?.watchesStarted == 1)
        #expect(await eventually { metrics.watchesStarted("resume") == 1 })
        #expect(metrics.watchesStarted("snapshot") == 1)
        // Bookmarks come and go on the resumed stream; the document is not delivered again.
        try await Task.sleep(for: .milliseconds(500))
        #expect(after.documents == [first])
        #expect(metrics.watchesStarted("resume") == 1)
        #expect(metrics.watchers == 1)

        // The resumed stream carries the next change.
        let moved = Self.document(endpoint: "10.20.1.8")
        try feed.exportsHub.publishExports(moved)
        #expect(await eventually { after.documents == [first, moved] })
        #expect(await eventually { (try? ExportsFeedHarness.persisted(in: stateDirectory))?.exports == moved })
        #expect(metrics.watchesStarted("snapshot") == 1)
        await after.stop()
        await feed.stop()
    }

    @Test func aRestartedClientThatMissedAChangeGetsASnapshot() async throws {
        let feed = try await ExportsFeedHarness.start()
        let stateDirectory = try FeedFixtures.temporaryDirectory()
        let first = Self.document()
        try feed.exportsHub.publishExports(first)
        let before = RecordingExportsClient(try feed.endpoint(), stateDirectory: stateDirectory)
        #expect(await eventually { before.documents == [first] })
        await before.stop()

        let moved = Self.document(endpoint: "10.20.1.8")
        try feed.exportsHub.publishExports(moved)
        let after = RecordingExportsClient(try feed.endpoint(), stateDirectory: stateDirectory)
        #expect(await eventually { after.documents == [first, moved] })
        #expect(feed.exportsHub.metrics.watchesStarted("snapshot") == 2)
        #expect(feed.exportsHub.metrics.watchesStarted("resume") == 0)
        await after.stop()
        await feed.stop()
    }

    @Test func aFeedWithoutExportsAnswers404() async throws {
        let feed = try await FeedHarness.start(FeedFixtures.state(services: 1))
        let base = "http://127.0.0.1:\(feed.port)"
        let missing = try runProgram("/usr/bin/curl", ["-sS", "--max-time", "2", "-w", "\n%{http_code}", "\(base)\(ExportsEvent.path)"])
        #expect(missing.out.hasSuffix("\n404"), "\(missing.out)")
        #expect(missing.out.contains("--exports"))
        // The watch stream beside it is served.
        let watch = try runProgram("/usr/bin/curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "0.5", "\(base)\(FeedWatchRequest.path)"])
        #expect(watch.out == "200")
        await feed.stop()

        // A feed with an exports hub: 503 until it holds a document, then 200.
        let exports = try await ExportsFeedHarness.start()
        let url = "http://127.0.0.1:\(exports.port)\(ExportsEvent.path)"
        let early = try runProgram("/usr/bin/curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "0.5", url])
        #expect(early.out == "503")
        try exports.exportsHub.publishExports(Self.document())
        let served = try runProgram("/usr/bin/curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "0.5", url])
        #expect(served.out == "200")
        await exports.stop()
    }
}

/// A feed server on a free loopback port with an exports hub beside its mirror-state hub
/// (which holds a small state); tests publish documents straight to the exports hub.
struct ExportsFeedHarness {
    let hub: FeedHub
    let exportsHub: FeedHub
    let server: FeedServer
    let port: Int

    static func start(tls: FeedTLSFiles? = nil, bookmarkInterval: TimeAmount = .seconds(1)) async throws -> ExportsFeedHarness {
        var configuration = FeedHub.Configuration()
        configuration.bookmarkInterval = bookmarkInterval
        let hub = FeedHub(configuration: configuration)
        try hub.publishSnapshot(FeedFixtures.state(services: 1))
        let exportsHub = FeedHub(configuration: configuration)
        let server = try await FeedServer(hub: hub, exportsHub: exportsHub, host: "127.0.0.1", port: 0,
                                          tls: try tls?.makeServerContext(), logger: FeedFixtures.logger)
        return ExportsFeedHarness(hub: hub, exportsHub: exportsHub, server: server, port: server.localAddress?.port ?? 0)
    }

    func endpoint(scheme: String = "http") throws -> FeedEndpoint {
        try FeedEndpoint(url: "\(scheme)://127.0.0.1:\(port)")
    }

    /// What a client persisted in `directory`.
    static func persisted(in directory: String) throws -> ExportsFeedClient.Held {
        let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/exports-state.json"))
        return try JSONDecoder().decode(ExportsFeedClient.Held.self, from: data)
    }

    func stop() async {
        await server.shutdown()
    }
}

/// A real ``ExportsFeedClient`` running in a task, recording every document it hands on and
/// every rejection it reports.
final class RecordingExportsClient: Sendable {
    struct Delivery: Sendable {
        var document: ExportsDocument
        /// What the `stamp` closure returned when the document was handed on.
        var watchesStarted: UInt64
    }

    private let recorded = NIOLockedValueBox<[Delivery]>([])
    private let rejected = NIOLockedValueBox<[String]>([])
    private let task: NIOLockedValueBox<Task<Void, any Error>?> = NIOLockedValueBox(nil)

    init(_ endpoint: FeedEndpoint, tls: FeedTLSFiles? = nil, stateDirectory: String? = nil,
         gatewayPorts: GatewayPortRange = .default, stamp: @escaping @Sendable () -> UInt64 = { 0 }) {
        var configuration = FeedClient.Configuration(endpoint: endpoint, tls: tls, stateDirectory: stateDirectory)
        configuration.initialBackoff = .milliseconds(20)
        configuration.maxBackoff = .milliseconds(200)
        let recorded = self.recorded, rejected = self.rejected
        let client = ExportsFeedClient(configuration: configuration, gatewayPorts: gatewayPorts,
                                       onRejected: { message in rejected.withLockedValue { $0.append(message) } },
                                       logger: FeedFixtures.logger)
        task.withLockedValue {
            $0 = Task {
                try await client.run { document in
                    let delivery = Delivery(document: document, watchesStarted: stamp())
                    recorded.withLockedValue { $0.append(delivery) }
                }
            }
        }
    }

    var deliveries: [Delivery] { recorded.withLockedValue { $0 } }
    var documents: [ExportsDocument] { deliveries.map(\.document) }
    var rejections: [String] { rejected.withLockedValue { $0 } }

    func stop() async {
        let task = task.withLockedValue { $0 }
        task?.cancel()
        _ = await task?.result
    }
}
