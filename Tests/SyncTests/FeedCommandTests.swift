import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import MirrorModel
@testable import MirrorFeed

/// The `mirror-agent feed` binary itself: serves a state file to curl and shuts down cleanly
/// on SIGTERM, ending every stream with HTTP's last chunk.
@Suite struct FeedCommandTests {
    /// A loopback port that was free a moment ago.
    static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        return port
    }

    @Test func sigtermEndsEveryStreamCleanly() async throws {
        let binary = try mirrorAgentBinary()
        let directory = try FeedFixtures.temporaryDirectory()
        let statePath = directory + "/state.json"
        let state = FeedFixtures.state(services: 2)
        try FeedFixtures.write(state, to: statePath)
        let port = try await Self.freePort()

        let feed = Process()
        feed.executableURL = URL(fileURLWithPath: binary)
        feed.arguments = ["feed", "--source", "file:\(statePath)", "--listen", "127.0.0.1:\(port)", "--insecure", "--log-level", "error"]
        feed.standardError = FileHandle.nullDevice
        try feed.run()
        defer { if feed.isRunning { feed.terminate() } }
        let ready = await eventually(timeout: .seconds(10)) {
            (try? runProgram("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(port)/readyz"]).status) == 0
        }
        #expect(ready)

        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        curl.arguments = ["-sS", "-N", "--max-time", "10", "http://127.0.0.1:\(port)/v1/watch"]
        let output = Pipe()
        curl.standardOutput = output
        try curl.run()
        try await Task.sleep(for: .milliseconds(500))
        kill(feed.processIdentifier, SIGTERM)
        curl.waitUntilExit()
        feed.waitUntilExit()
        let body = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        // curl exits 0 only when the chunked body ended properly (18 = cut short).
        #expect(curl.terminationStatus == 0)
        #expect(feed.terminationStatus == 0)
        let first = try FeedEvent.decode(line: ByteBuffer(string: String(body.split(separator: "\n").first ?? "")))
        if case let .snapshot(_, _, served) = first {
            #expect(served == state.normalized)
        } else {
            Issue.record("expected a snapshot first, got \(first)")
        }
    }

    @Test func agentFollowsATLSFeedAndServesItsPersistedStateWhenTheFeedIsDown() async throws {
        let binary = try mirrorAgentBinary()
        let pki = try TestPKI.shared()
        let directory = try FeedFixtures.temporaryDirectory()
        let statePath = directory + "/state.json", stateDirectory = directory + "/agent"
        try FeedFixtures.write(FeedFixtures.state(services: 3), to: statePath)
        let port = try await Self.freePort()

        let feed = Process()
        feed.executableURL = URL(fileURLWithPath: binary)
        feed.arguments = ["feed", "--source", "file:\(statePath)", "--listen", "127.0.0.1:\(port)",
                          "--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--client-ca", pki.ca, "--log-level", "error"]
        feed.standardError = FileHandle.nullDevice
        try feed.run()
        defer { if feed.isRunning { feed.terminate() } }

        let agentArguments = ["run", "--feed", "https://127.0.0.1:\(port)", "--tls-cert", pki.clientCert, "--tls-key", pki.clientKey,
                              "--ca", pki.ca, "--state-dir", stateDirectory, "--log-level", "info",
                              // Feed client only: no DNS, no nftables, a private admin socket.
                              "--no-dns", "--no-nftables", "--admin-socket", directory + "/admin.sock"]
        let persisted = stateDirectory + "/" + FeedStateFile.fileName
        let first = Process()
        first.executableURL = URL(fileURLWithPath: binary)
        first.arguments = agentArguments
        first.standardError = FileHandle.nullDevice
        try first.run()
        defer { if first.isRunning { first.terminate() } }
        #expect(await eventually { FileManager.default.fileExists(atPath: persisted) })
        first.terminate()
        first.waitUntilExit()
        feed.terminate()
        feed.waitUntilExit()
        let saved = try #require(try FeedStateFile(directory: stateDirectory).load())
        #expect(saved.store.state == FeedFixtures.state(services: 3).normalized)

        // Feed down: the restarted agent announces the persisted state and keeps retrying.
        let second = try runProgram(binary, agentArguments, timeout: 1.5)
        #expect(second.err.contains("serving the persisted mirror state"))
        #expect(second.err.contains("feed connection lost"))
    }
}
