import Foundation
import Testing
@testable import MirrorModel
@testable import MirrorFeed

/// Mutual TLS: the feed serves only clients whose certificate chains to its client CA, and
/// plain HTTP needs an explicit --insecure on both commands.
@Suite struct FeedSecurityTests {
    @Test func aClientWithACertificateFromTheCAIsServed() async throws {
        let pki = try TestPKI.shared()
        let state = FeedFixtures.state(services: 2)
        let feed = try await FeedHarness.start(state, tls: pki.serverFiles)
        var configuration = FeedClient.Configuration(endpoint: try feed.endpoint(scheme: "https"), tls: pki.clientFiles, stateDirectory: nil)
        configuration.initialBackoff = .milliseconds(20)
        let client = RecordingClient(configuration)
        #expect(await client.waitFor(state, revision: feed.hub.revision))
        // curl with the same client certificate reads the stream too.
        let curl = try runProgram("/usr/bin/curl", ["-sS", "-N", "--max-time", "1", "--cacert", pki.ca, "--cert", pki.clientCert,
                                                    "--key", pki.clientKey, "https://127.0.0.1:\(feed.port)/v1/watch"])
        #expect(curl.out.hasPrefix("{\"type\":\"snapshot\""))
        await client.stop()
        await feed.stop()
    }

    @Test func aClientWithoutACertificateIsRefused() async throws {
        let pki = try TestPKI.shared()
        let feed = try await FeedHarness.start(FeedFixtures.state(services: 1), tls: pki.serverFiles)
        let curl = try runProgram("/usr/bin/curl", ["-sS", "-N", "--max-time", "2", "--cacert", pki.ca, "https://127.0.0.1:\(feed.port)/v1/watch"])
        #expect(curl.status != 0)
        #expect(!curl.out.contains("snapshot"))
        #expect(feed.hub.metrics.watchers == 0)
        #expect(feed.hub.metrics.watchesStarted("snapshot") == 0)
        await feed.stop()
    }

    @Test func aClientWithACertificateFromAnotherCAIsRefused() async throws {
        let pki = try TestPKI.shared()
        let state = FeedFixtures.state(services: 1)
        let feed = try await FeedHarness.start(state, tls: pki.serverFiles)
        // The client trusts the server, but its own certificate is from another CA.
        var configuration = FeedClient.Configuration(endpoint: try feed.endpoint(scheme: "https"),
                                                     tls: FeedTLSFiles(certificate: pki.otherClientCert, key: pki.otherClientKey, ca: pki.ca),
                                                     stateDirectory: nil)
        configuration.initialBackoff = .milliseconds(20)
        let client = RecordingClient(configuration)
        let curl = try runProgram("/usr/bin/curl", ["-sS", "-N", "--max-time", "2", "--cacert", pki.ca, "--cert", pki.otherClientCert,
                                                    "--key", pki.otherClientKey, "https://127.0.0.1:\(feed.port)/v1/watch"])
        #expect(curl.status != 0)
        #expect(!curl.out.contains("snapshot"))
        try await Task.sleep(for: .milliseconds(500))
        #expect(client.all.isEmpty)
        #expect(feed.hub.metrics.watchesStarted("snapshot") == 0)
        await client.stop()
        await feed.stop()
    }

    @Test func aServerFromAnotherCAIsNotTrusted() async throws {
        let pki = try TestPKI.shared()
        let feed = try await FeedHarness.start(FeedFixtures.state(services: 1), tls: pki.serverFiles)
        var configuration = FeedClient.Configuration(endpoint: try feed.endpoint(scheme: "https"),
                                                     tls: FeedTLSFiles(certificate: pki.clientCert, key: pki.clientKey, ca: pki.otherCA),
                                                     stateDirectory: nil)
        configuration.initialBackoff = .milliseconds(20)
        let client = RecordingClient(configuration)
        try await Task.sleep(for: .milliseconds(500))
        #expect(client.all.isEmpty)
        await client.stop()
        await feed.stop()
    }

    @Test func plainHTTPNeedsInsecureOnBothCommands() throws {
        let binary = try mirrorAgentBinary()
        let directory = try FeedFixtures.temporaryDirectory()
        let statePath = directory + "/state.json"
        try FeedFixtures.write(FeedFixtures.state(services: 1), to: statePath)

        let agent = try runProgram(binary, ["run", "--feed", "http://127.0.0.1:9", "--no-dns", "--no-nftables"])
        #expect(agent.status != 0)
        #expect(agent.err.contains("--insecure"))
        let feed = try runProgram(binary, ["feed", "--source", "file:\(statePath)", "--listen", "127.0.0.1:0"])
        #expect(feed.status != 0)
        #expect(feed.err.contains("--insecure"))
        // https without a client identity is refused before anything connects.
        let noIdentity = try runProgram(binary, ["run", "--feed", "https://127.0.0.1:9", "--no-dns", "--no-nftables"])
        #expect(noIdentity.status != 0)
        #expect(noIdentity.err.contains("--tls-cert"))
    }

    @Test func insecureAgentWarnsAndServesThePlainFeed() async throws {
        let binary = try mirrorAgentBinary()
        let state = FeedFixtures.state(services: 1)
        let feed = try await FeedHarness.start(state)
        // The agent runs until killed; 1.5 s is enough to connect and log.
        let agent = try runProgram(binary, ["run", "--feed", "http://127.0.0.1:\(feed.port)", "--insecure", "--log-level", "debug",
                                               "--no-dns", "--no-nftables", "--admin-socket", NSTemporaryDirectory() + "mirror-admin-\(feed.port).sock"], timeout: 1.5)
        #expect(agent.err.contains("warning"))
        #expect(agent.err.contains("neither encrypted nor authenticated"))
        #expect(feed.hub.metrics.watchesStarted("snapshot") == 1)
        await feed.stop()
    }
}
