import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import Testing
@testable import MirrorModel
@testable import MirrorFeed

/// TLS files rotate under running feeds and clients, with real TLS over loopback: two CAs made
/// with openssl ("one" signs the initial certificates, "two" the new ones), files replaced by
/// rename (as cert-manager does) or by Kubernetes' `..data` symlink swap, a ``FeedServer``
/// whose ``TLSReloader`` follows them with ``TLSReloader/watch(interval:)``, and real
/// ``FeedClient``s, ``ExportsFeedClient``s and curl. Every wait is bounded.
@Suite struct TLSRotationTests {
    /// A client identity (`client-one`, `client-two`) and the CA bundle it trusts the server with.
    typealias Client = (identity: String, trust: String)

    // MARK: 1. server certificate and client CA rotate mid-stream

    @Test func serverCertificateAndClientCARotateMidStream() async throws {
        let pki = try RotationPKI.shared()
        let files = try TLSFilesDirectory()
        try files.install(pki, identity: "server-one", ca: "one")
        let state = FeedFixtures.state(services: 2)
        let feed = try await ReloadingFeed.start(state, tls: files.files, watch: .seconds(2))

        // Streams opened before the rotation: a FeedClient and curl -N, both with CA-one
        // certificates and trusting CA one only (a reconnect after the rotation would fail).
        let oldLinks = LinkLog()
        let old = RecordingClient(try pki.configuration(port: feed.port, ("client-one", "one"), links: oldLinks))
        #expect(await old.waitFor(state, timeout: .seconds(5)))
        let curl = try CurlStream(pki.curlArguments(port: feed.port, ("client-one", "one"), path: FeedWatchRequest.path, stream: true))
        defer { curl.stop() }
        #expect(await eventually(timeout: .seconds(5)) { curl.output.contains("svc-1") })
        // The premise: before the rotation a CA-two client is refused.
        #expect(pki.served(port: feed.port, ("client-two", "one")) == false)

        // Overlap: the server certificate from CA two, the client CA bundle holds one and two.
        let overlapStarted = ContinuousClock.now
        try files.install(pki, identity: "server-two", ca: "both")
        let overlap = await waitFor(within: .seconds(5)) { pki.served(port: feed.port, ("client-two", "two")) }
        print("TLS rotation (rename): a CA-two client was served \(describe(overlap, since: overlapStarted)) after the files were replaced")
        #expect(overlap != nil, "a CA-two client was not served within 5 s of the rotation")
        // Clients of both CAs are accepted while the bundle holds both.
        #expect(pki.served(port: feed.port, ("client-one", "two")))
        #expect(pki.served(port: feed.port, ("client-two", "two")))
        let newLinks = LinkLog()
        let fresh = RecordingClient(try pki.configuration(port: feed.port, ("client-two", "two"), links: newLinks))
        #expect(await fresh.waitFor(state, timeout: .seconds(5)))

        // CA one leaves the client CA bundle: CA-one clients are refused from then on.
        let retireStarted = ContinuousClock.now
        try files.install(pki, identity: "server-two", ca: "two")
        let retired = await waitFor(within: .seconds(5)) { !pki.served(port: feed.port, ("client-one", "two")) }
        print("TLS rotation (rename): CA-one clients refused \(describe(retired, since: retireStarted)) after CA one left the bundle")
        #expect(retired != nil, "a CA-one client was still served 5 s after CA one left the client CA bundle")
        #expect(pki.served(port: feed.port, ("client-two", "two")))
        let refusedLinks = LinkLog()
        let refused = RecordingClient(try pki.configuration(port: feed.port, ("client-one", "two"), links: refusedLinks))
        #expect(await eventually(timeout: .seconds(5)) { !refusedLinks.lost.isEmpty })
        #expect(refused.all.isEmpty)
        #expect(refusedLinks.established == 0)
        // Its error names the files to look at (its certificate must chain to the feed's client
        // CA). Not necessarily the first one: see everyHandshakeFailureNamesTheFiles.
        #expect(await eventually(timeout: .seconds(5)) { refusedLinks.lost.contains { $0.contains("TLS handshake") } }, "\(refusedLinks.lost)")
        let refusal = refusedLinks.lost.first { $0.contains("TLS handshake") } ?? ""
        #expect(refusal.contains(pki.path("client-one.pem")), "\(refusal)")

        // A change published after the rotation reaches the streams opened before it (which
        // never reconnected: a reconnect would not trust the new server certificate).
        let changed = FeedFixtures.state(services: 3)
        try await feed.publish(changed)
        #expect(await old.waitFor(changed, timeout: .seconds(5)))
        #expect(await eventually(timeout: .seconds(5)) { curl.output.contains("svc-2") })
        #expect(curl.isRunning)
        #expect(await fresh.waitFor(changed, timeout: .seconds(5)))
        #expect(oldLinks.established == 1)
        #expect(oldLinks.lost.isEmpty, "\(oldLinks.lost)")
        #expect(feed.reloader.expiries.first { $0.kind == "certificate" }?.notAfter == (try pki.notAfter("server-two")))

        await refused.stop()
        await fresh.stop()
        await old.stop()
        await feed.stop()
    }

    // MARK: 2. broken material is refused and the old material still serves

    @Test func aKeyThatDoesNotMatchTheCertificateIsRefused() async throws {
        let pki = try RotationPKI.shared()
        let files = try TLSFilesDirectory()
        try files.install(pki, identity: "server-one", ca: "one")
        let state = FeedFixtures.state(services: 1)
        // No watch: the test drives reload() itself to see its outcome.
        let feed = try await ReloadingFeed.start(state, tls: files.files, watch: nil)
        #expect(pki.served(port: feed.port, ("client-one", "one")))
        let expiries = feed.reloader.expiries

        try FeedFixtures.write(try pki.text("stray.key"), to: files.files.key)
        let outcome = feed.reloader.reload()
        guard case let .refused(reason) = outcome else {
            Issue.record("a key that does not match the certificate was not refused: \(outcome)")
            await feed.stop()
            return
        }
        #expect(reason.contains(files.files.key), "\(reason)")
        #expect(reason.contains("does the key match the certificate"), "\(reason)")
        // Logged once: the same bad bytes are not retried every tick.
        #expect(feed.reloader.reload() == .unchanged)
        // The previous material still serves new clients with the old trust.
        #expect(pki.served(port: feed.port, ("client-one", "one")))
        let client = RecordingClient(try pki.configuration(port: feed.port, ("client-one", "one"), links: LinkLog()))
        #expect(await client.waitFor(state, timeout: .seconds(5)))
        #expect(feed.reloader.expiries == expiries)

        // The matching key back: accepted again.
        try FeedFixtures.write(try pki.text("server-one.key"), to: files.files.key)
        #expect(feed.reloader.reload() == .reloaded)
        #expect(pki.served(port: feed.port, ("client-one", "one")))
        await client.stop()
        await feed.stop()
    }

    enum Damage: String, CaseIterable, Sendable {
        case truncatedCertificate, emptyCertificate, truncatedKey, truncatedCABundle
    }

    @Test(arguments: Damage.allCases)
    func aHalfWrittenPEMIsRefused(_ damage: Damage) async throws {
        let pki = try RotationPKI.shared()
        let files = try TLSFilesDirectory()
        try files.install(pki, identity: "server-one", ca: "one")
        let state = FeedFixtures.state(services: 1)
        let feed = try await ReloadingFeed.start(state, tls: files.files, watch: nil)
        #expect(pki.served(port: feed.port, ("client-one", "one")))

        // A writer stopped half-way (written in place, as a naive copy would leave it).
        let (file, role, text): (String, String, String) = switch damage {
        case .truncatedCertificate: (files.files.certificate, "certificate", Self.half(try pki.text("server-two.pem")))
        case .emptyCertificate: (files.files.certificate, "certificate", "")
        case .truncatedKey: (files.files.key, "private key", Self.half(try pki.text("server-one.key")))
        // The new bundle (one + two) cut inside its second certificate.
        case .truncatedCABundle: (files.files.ca, "CA bundle", try pki.text("one.pem") + Self.half(try pki.text("two.pem")))
        }
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
        let outcome = feed.reloader.reload()
        guard case let .refused(reason) = outcome else {
            Issue.record("\(damage): the half-written \(role) was not refused: \(outcome)")
            await feed.stop()
            return
        }
        #expect(reason.contains(file), "\(reason)")
        #expect(reason.contains(role), "\(reason)")
        // The old material serves new clients with the old trust; a CA-two client is still refused.
        #expect(pki.served(port: feed.port, ("client-one", "one")))
        #expect(pki.served(port: feed.port, ("client-two", "one")) == false)
        let client = RecordingClient(try pki.configuration(port: feed.port, ("client-one", "one"), links: LinkLog()))
        #expect(await client.waitFor(state, timeout: .seconds(5)))
        await client.stop()
        await feed.stop()
    }

    /// The first half of `text`, cut inside a base64 line.
    static func half(_ text: String) -> String {
        String(text.prefix(text.count / 2 + 3))
    }

    // MARK: 3. Kubernetes Secret volume: the ..data symlink swap

    /// With the default 2 s re-check, and with an hour's (so only inotify can see the swap).
    @Test(arguments: [2, 3600])
    func aSecretVolumeSymlinkSwapIsFollowed(recheckSeconds: Int) async throws {
        let pki = try RotationPKI.shared()
        let volume = try SecretVolume()
        try volume.project(pki, identity: "server-one", ca: "one", timestamp: "..2026_12_04_00_00_00.123")
        let state = FeedFixtures.state(services: 1)
        let feed = try await ReloadingFeed.start(state, tls: volume.files, watch: .seconds(recheckSeconds))
        #expect(pki.served(port: feed.port, ("client-one", "one")))
        #expect(pki.served(port: feed.port, ("client-two", "two")) == false)
        let links = LinkLog()
        let old = RecordingClient(try pki.configuration(port: feed.port, ("client-one", "one"), links: links))
        #expect(await old.waitFor(state, timeout: .seconds(5)))

        let started = ContinuousClock.now
        try volume.project(pki, identity: "server-two", ca: "two", timestamp: "..2026_12_04_00_05_00.456")
        let served = await waitFor(within: .seconds(5)) { pki.served(port: feed.port, ("client-two", "two")) }
        print("TLS rotation (Secret ..data swap, re-check every \(recheckSeconds) s): a CA-two client was served \(describe(served, since: started)) after the swap")
        #expect(served != nil, "a CA-two client was not served within 5 s of the ..data swap")
        // CA one is gone from the client CA bundle; the old stream goes on.
        #expect(pki.served(port: feed.port, ("client-one", "two")) == false)
        let changed = FeedFixtures.state(services: 2)
        try await feed.publish(changed)
        #expect(await old.waitFor(changed, timeout: .seconds(5)))
        #expect(links.lost.isEmpty, "\(links.lost)")
        await old.stop()
        await feed.stop()
    }

    // MARK: 4. the agent's (and the gateway's) client certificate rotates

    @Test func aRotatedClientCertificateIsUsedOnTheNextConnection() async throws {
        let pki = try RotationPKI.shared()
        let serverFiles = try TLSFilesDirectory(), clientFiles = try TLSFilesDirectory()
        try serverFiles.install(pki, identity: "server-one", ca: "both")
        try clientFiles.install(pki, identity: "client-one", ca: "both")
        let first = FeedFixtures.state(services: 1)
        let hub = try Self.hub(first)
        let server = try await FeedServer(hub: hub, host: "127.0.0.1", port: 0, tls: try serverFiles.files.makeServerContext(), logger: FeedFixtures.logger)
        let port = try #require(server.localAddress?.port)

        let links = LinkLog()
        var configuration = FeedClient.Configuration(endpoint: try FeedEndpoint(url: "https://127.0.0.1:\(port)"), tls: clientFiles.files, stateDirectory: nil)
        configuration.initialBackoff = .milliseconds(20)
        configuration.maxBackoff = .milliseconds(200)
        configuration.onLinkChange = { links.record($0) }
        let client = RecordingClient(configuration)
        #expect(await client.waitFor(first, timeout: .seconds(5)))

        // cert-manager renews the client certificate from CA two.
        try clientFiles.install(pki, identity: "client-two", ca: "both")
        // The feed restarts on the same port trusting CA two only.
        await server.shutdown()
        try serverFiles.install(pki, identity: "server-one", ca: "two")
        let second = FeedFixtures.state(services: 2)
        let restarted = try await FeedServer(hub: try Self.hub(second), host: "127.0.0.1", port: port,
                                             tls: try serverFiles.files.makeServerContext(), logger: FeedFixtures.logger)
        // The premise: the old client certificate is refused by the restarted feed.
        #expect(pki.served(port: port, ("client-one", "both")) == false)
        #expect(pki.served(port: port, ("client-two", "both")))

        #expect(await client.waitFor(second, timeout: .seconds(5)), "the client did not reconnect with its new certificate: \(links.lost.suffix(2))")
        #expect(links.established == 2)
        await client.stop()
        await restarted.shutdown()
    }

    @Test func theExportsClientUsesItsRotatedCertificateOnTheNextConnection() async throws {
        let pki = try RotationPKI.shared()
        let serverFiles = try TLSFilesDirectory(), clientFiles = try TLSFilesDirectory()
        try serverFiles.install(pki, identity: "server-one", ca: "both")
        try clientFiles.install(pki, identity: "client-one", ca: "both")
        let first = ExportsFeedTests.document()
        let (server, port) = try await Self.exportsServer(first, port: 0, tls: serverFiles.files)
        let client = RecordingExportsClient(try FeedEndpoint(url: "https://127.0.0.1:\(port)"), tls: clientFiles.files)
        #expect(await eventually(timeout: .seconds(5)) { client.documents == [first] })

        try clientFiles.install(pki, identity: "client-two", ca: "both")
        await server.shutdown()
        try serverFiles.install(pki, identity: "server-one", ca: "two")
        let second = ExportsFeedTests.document(endpoint: "10.20.1.9")
        let (restarted, _) = try await Self.exportsServer(second, port: port, tls: serverFiles.files)
        #expect(pki.served(port: port, ("client-one", "both")) == false)

        #expect(await eventually(timeout: .seconds(5)) { client.documents == [first, second] }, "\(client.documents.count) documents")
        #expect(client.rejections.isEmpty)
        await client.stop()
        await restarted.shutdown()
    }

    // MARK: 5. a server certificate the client does not trust

    @Test func aServerCertificateTheClientNoLongerTrustsIsReportedWithTheCAFile() async throws {
        let pki = try RotationPKI.shared()
        let serverFiles = try TLSFilesDirectory(), clientFiles = try TLSFilesDirectory()
        try serverFiles.install(pki, identity: "server-one", ca: "both")
        try clientFiles.install(pki, identity: "client-one", ca: "one")
        let state = FeedFixtures.state(services: 1)
        let reloader = try TLSReloader(files: serverFiles.files, side: .server, logger: FeedFixtures.logger)
        let server = try await FeedServer(hub: try Self.hub(state), host: "127.0.0.1", port: 0, tlsMaterial: reloader, logger: FeedFixtures.logger)
        let port = try #require(server.localAddress?.port)

        let links = LinkLog()
        var configuration = FeedClient.Configuration(endpoint: try FeedEndpoint(url: "https://127.0.0.1:\(port)"), tls: clientFiles.files, stateDirectory: nil)
        configuration.initialBackoff = .milliseconds(20)
        configuration.maxBackoff = .milliseconds(200)
        configuration.onLinkChange = { links.record($0) }
        let client = RecordingClient(configuration)
        #expect(await client.waitFor(state, timeout: .seconds(5)))

        // The feed's certificate is renewed from CA two, which this client does not trust; the
        // feed restarts (same reloader, same port), so the client must handshake again.
        try serverFiles.install(pki, identity: "server-two", ca: "both")
        #expect(reloader.reload() == .reloaded)
        await server.shutdown()
        let restarted = try await FeedServer(hub: try Self.hub(state), host: "127.0.0.1", port: port, tlsMaterial: reloader, logger: FeedFixtures.logger)

        let handshake = await waitFor(within: .seconds(5)) { links.lost.contains { $0.contains("TLS handshake") } }
        #expect(handshake != nil, "no handshake failure reported: \(links.lost)")
        let reason = links.lost.first { $0.contains("TLS handshake") } ?? ""
        #expect(reason.contains(clientFiles.files.ca), "\(reason)")
        #expect(reason.contains(clientFiles.files.certificate), "\(reason)")
        #expect(reason.contains("127.0.0.1:\(port)"), "\(reason)")
        // Every later attempt fails the same way, and the last applied state stays.
        try await Task.sleep(for: .milliseconds(300))
        #expect(links.established == 1)
        #expect(client.latest?.state == state.normalized)
        await client.stop()
        await restarted.shutdown()
    }

    /// Every failed handshake, whichever side refuses, is reported with the files to look at,
    /// also when the client's task resumes late (a busy node) and the failed handshake has
    /// already closed the channel when the client writes its request. The clients run on an
    /// executor that starts each job 3 ms late (the NIO event loops are untouched), so the
    /// handshake is over before the client's next step. Both clients (FeedClient,
    /// ExportsFeedClient), both refusals (the server refuses the client certificate; the
    /// client does not trust the server).
    @Test func everyHandshakeFailureNamesTheFiles() async throws {
        let pki = try RotationPKI.shared()
        let serverFiles = try TLSFilesDirectory()
        try serverFiles.install(pki, identity: "server-two", ca: "two")
        let reloader = try TLSReloader(files: serverFiles.files, side: .server, logger: FeedFixtures.logger)
        let exportsHub = FeedHub()
        try exportsHub.publishExports(ExportsFeedTests.document())
        let server = try await FeedServer(hub: try Self.hub(FeedFixtures.state(services: 1)), exportsHub: exportsHub, host: "127.0.0.1", port: 0,
                                          tlsMaterial: reloader, logger: FeedFixtures.logger)
        let port = try #require(server.localAddress?.port)

        let late = LateExecutor(delay: .milliseconds(3))
        let refusedByServer: Client = ("client-one", "two"), distrustingServer: Client = ("client-one", "one")
        var runs: [(name: String, links: LinkLog, files: FeedTLSFiles, task: Task<Void, any Error>)] = []
        for (name, client) in [("refused by the server", refusedByServer), ("not trusting the server", distrustingServer)] {
            for exports in [false, true] {
                let links = LinkLog()
                var configuration = try pki.configuration(port: port, client, links: links)
                configuration.maxBackoff = .milliseconds(40)
                let task: Task<Void, any Error>
                if exports {
                    let feedClient = ExportsFeedClient(configuration: configuration, gatewayPorts: .default, logger: FeedFixtures.logger)
                    task = Task(executorPreference: late) { try await feedClient.run { _ in } }
                } else {
                    let feedClient = FeedClient(configuration: configuration, logger: FeedFixtures.logger)
                    task = Task(executorPreference: late) { try await feedClient.run { _ in } }
                }
                runs.append(("\(exports ? "ExportsFeedClient" : "FeedClient") \(name)", links, try #require(configuration.tls), task))
            }
        }
        // Enough for some 20 attempts each.
        _ = await eventually(timeout: .seconds(5)) { runs.allSatisfy { $0.links.lost.count >= 20 } }
        for run in runs { run.task.cancel(); _ = await run.task.result }
        await server.shutdown()

        var unexplained: [String: Set<String>] = [:]
        for run in runs {
            let lost = run.links.lost
            #expect(lost.count >= 5, "\(run.name): only \(lost.count) attempts")
            #expect(run.links.established == 0)
            for reason in lost where reason.contains("TLS handshake") {
                #expect(reason.contains(run.files.ca) && reason.contains(run.files.certificate), "\(run.name): \(reason)")
            }
            let other = lost.filter { !$0.contains("TLS handshake") }
            if !other.isEmpty { unexplained[run.name] = Set(other) }
            print("TLS handshake failures, \(run.name): \(lost.count) attempts, \(other.count) reported without the files: \(Set(other).sorted())")
        }
        #expect(unexplained.isEmpty, "\(unexplained)")
    }

    // MARK: helpers

    static func hub(_ state: MirrorState) throws -> FeedHub {
        var configuration = FeedHub.Configuration()
        configuration.bookmarkInterval = .seconds(1)
        let hub = FeedHub(configuration: configuration)
        try hub.publishSnapshot(state)
        return hub
    }

    static func exportsServer(_ document: ExportsDocument, port: Int, tls: FeedTLSFiles) async throws -> (FeedServer, Int) {
        var configuration = FeedHub.Configuration()
        configuration.bookmarkInterval = .milliseconds(300)
        let exportsHub = FeedHub(configuration: configuration)
        try exportsHub.publishExports(document)
        let server = try await FeedServer(hub: try hub(FeedFixtures.state(services: 1)), exportsHub: exportsHub, host: "127.0.0.1", port: port,
                                          tls: try tls.makeServerContext(), logger: FeedFixtures.logger)
        return (server, try #require(server.localAddress?.port))
    }
}

/// Polls `condition` every 20 ms for up to `within`; the time it took to hold, or nil.
fileprivate func waitFor(within timeout: Duration, _ condition: () -> Bool) async -> Duration? {
    let started = ContinuousClock.now
    let deadline = started + timeout
    while ContinuousClock.now < deadline {
        if condition() { return ContinuousClock.now - started }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition() ? ContinuousClock.now - started : nil
}

/// "in 123 ms" or "not within the wait".
fileprivate func describe(_ took: Duration?, since started: ContinuousClock.Instant) -> String {
    guard took != nil else { return "NOT (gave up after \((ContinuousClock.now - started).milliseconds) ms)" }
    return "in \((ContinuousClock.now - started).milliseconds) ms"
}

fileprivate extension Duration {
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}

/// Two CAs ("one", "two") and, from each, a server certificate for 127.0.0.1 and a client
/// certificate; `both.pem` is the bundle of both CAs; `stray.key` matches no certificate.
struct RotationPKI: Sendable {
    let directory: String

    func path(_ name: String) -> String { "\(directory)/\(name)" }
    func text(_ name: String) throws -> String { try String(contentsOfFile: path(name), encoding: .utf8) }

    /// The CA bundle file for `one`, `two` or `both`.
    func bundle(_ ca: String) -> String { path("\(ca).pem") }

    /// When `identity`'s certificate expires (read with NIOSSL, as the reloader does).
    func notAfter(_ identity: String) throws -> Date {
        let certificate = try #require(try NIOSSLCertificate.fromPEMFile(path("\(identity).pem")).first)
        return Date(timeIntervalSince1970: TimeInterval(certificate.notValidAfter))
    }

    /// A FeedClient configuration for `client` (retrying fast), recording its link changes.
    func configuration(port: Int, _ client: TLSRotationTests.Client, links: LinkLog) throws -> FeedClient.Configuration {
        var configuration = FeedClient.Configuration(endpoint: try FeedEndpoint(url: "https://127.0.0.1:\(port)"),
                                                     tls: FeedTLSFiles(certificate: path("\(client.identity).pem"), key: path("\(client.identity).key"),
                                                                       ca: bundle(client.trust)),
                                                     stateDirectory: nil)
        configuration.initialBackoff = .milliseconds(20)
        configuration.maxBackoff = .milliseconds(200)
        configuration.onLinkChange = { links.record($0) }
        return configuration
    }

    func curlArguments(port: Int, _ client: TLSRotationTests.Client, path urlPath: String, stream: Bool) -> [String] {
        ["-sS"] + (stream ? ["-N"] : ["-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3"])
            + ["--cacert", bundle(client.trust), "--cert", path("\(client.identity).pem"), "--key", path("\(client.identity).key"),
               "https://127.0.0.1:\(port)\(urlPath)"]
    }

    /// Whether a new TLS client with `client`'s certificate, trusting `client.trust`, is served
    /// (curl, `/healthz` answers 200).
    func served(port: Int, _ client: TLSRotationTests.Client) -> Bool {
        guard let result = try? runProgram("/usr/bin/curl", curlArguments(port: port, client, path: "/healthz", stream: false), timeout: 5) else { return false }
        return result.status == 0 && result.out == "200"
    }

    private static let made = NIOLockedValueBox<Result<RotationPKI, HarnessError>?>(nil)

    static func shared() throws -> RotationPKI {
        try made.withLockedValue { made in
            if made == nil { made = Result { try RotationPKI.make() }.mapError { HarnessError("\($0)") } }
            return try made!.get()
        }
    }

    private static func make() throws -> RotationPKI {
        RotationPKI(directory: try makeTestCertificates("""
            ca one 30
            ca two 30
            cat one.pem two.pem > both.pem
            leaf server-one one 10 'subjectAltName=IP:127.0.0.1,DNS:localhost
            extendedKeyUsage=serverAuth'
            leaf server-two two 20 'subjectAltName=IP:127.0.0.1,DNS:localhost
            extendedKeyUsage=serverAuth'
            leaf client-one one 10 'extendedKeyUsage=clientAuth'
            leaf client-two two 20 'extendedKeyUsage=clientAuth'
            key stray.key
            """))
    }
}

/// One side's `tls.crt`, `tls.key`, `ca.crt` in a directory of their own, replaced by rename.
struct TLSFilesDirectory {
    let directory: String
    var files: FeedTLSFiles { FeedTLSFiles(certificate: directory + "/tls.crt", key: directory + "/tls.key", ca: directory + "/ca.crt") }

    init() throws {
        directory = try FeedFixtures.temporaryDirectory()
    }

    /// Writes `identity`'s certificate and key and the `ca` bundle, each to a temporary file in
    /// the directory renamed over the old one (cert-manager's way).
    func install(_ pki: RotationPKI, identity: String, ca: String) throws {
        try FeedFixtures.write(try pki.text("\(identity).pem"), to: files.certificate)
        try FeedFixtures.write(try pki.text("\(identity).key"), to: files.key)
        try FeedFixtures.write(try pki.text("\(ca).pem"), to: files.ca)
    }
}

/// A directory laid out as the kubelet projects a Secret volume: the files in a timestamped
/// directory, `..data` a symlink to it, and `tls.crt` → `..data/tls.crt` (etc.).
struct SecretVolume {
    let directory: String
    var files: FeedTLSFiles { FeedTLSFiles(certificate: directory + "/tls.crt", key: directory + "/tls.key", ca: directory + "/ca.crt") }

    init() throws {
        directory = try FeedFixtures.temporaryDirectory()
    }

    /// Projects a new version: writes the files into `timestamp`, points `..data_tmp` at it,
    /// renames `..data_tmp` over `..data`, links the user-visible names on first use, and
    /// removes the previous version's directory, as the kubelet's atomic writer does.
    func project(_ pki: RotationPKI, identity: String, ca: String, timestamp: String) throws {
        let manager = FileManager.default
        let previous = try? manager.destinationOfSymbolicLink(atPath: directory + "/..data")
        try manager.createDirectory(atPath: directory + "/" + timestamp, withIntermediateDirectories: false)
        for (name, source) in [("tls.crt", "\(identity).pem"), ("tls.key", "\(identity).key"), ("ca.crt", "\(ca).pem")] {
            try Data(try pki.text(source).utf8).write(to: URL(fileURLWithPath: "\(directory)/\(timestamp)/\(name)"))
        }
        try manager.createSymbolicLink(atPath: directory + "/..data_tmp", withDestinationPath: timestamp)
        guard rename(directory + "/..data_tmp", directory + "/..data") == 0 else { throw HarnessError("rename ..data_tmp: \(errno)") }
        for name in ["tls.crt", "tls.key", "ca.crt"] where (try? manager.destinationOfSymbolicLink(atPath: "\(directory)/\(name)")) == nil {
            try manager.createSymbolicLink(atPath: "\(directory)/\(name)", withDestinationPath: "..data/\(name)")
        }
        if let previous { try manager.removeItem(atPath: directory + "/" + previous) }
    }
}

/// A feed server whose TLS material follows its files, fed from a real state file.
struct ReloadingFeed {
    let statePath: String
    let hub: FeedHub
    let server: FeedServer
    let reloader: TLSReloader
    let port: Int
    private let publisher: Task<Void, any Error>
    private let watcher: Task<Void, Never>?

    /// Starts serving `state` with `tls`; `watch` is the reloader's re-check interval (nil:
    /// no watch task, the test calls `reload()` itself).
    static func start(_ state: MirrorState, tls: FeedTLSFiles, watch interval: Duration?) async throws -> ReloadingFeed {
        let directory = try FeedFixtures.temporaryDirectory()
        let statePath = directory + "/state.json"
        try FeedFixtures.write(state, to: statePath)
        var configuration = FeedHub.Configuration()
        configuration.bookmarkInterval = .seconds(1)
        let hub = FeedHub(configuration: configuration)
        let reloader = try TLSReloader(files: tls, side: .server, logger: FeedFixtures.logger)
        let server = try await FeedServer(hub: hub, host: "127.0.0.1", port: 0, tlsMaterial: reloader, logger: FeedFixtures.logger)
        let source = FileMirrorSource(path: statePath, pollInterval: .milliseconds(20), logger: FeedFixtures.logger)
        let publisher = Task { try await FeedPublisher(hub: hub, source: source, logger: FeedFixtures.logger).run() }
        let watcher = interval.map { interval in Task { await reloader.watch(interval: interval) } }
        guard await eventually({ hub.isReady }) else { throw HarnessError("feed never loaded \(statePath)") }
        // Let the watch task set up its inotify watches before a test rotates anything.
        try await Task.sleep(for: .milliseconds(100))
        return ReloadingFeed(statePath: statePath, hub: hub, server: server, reloader: reloader, port: server.localAddress?.port ?? 0,
                             publisher: publisher, watcher: watcher)
    }

    func publish(_ state: MirrorState) async throws {
        try FeedFixtures.write(state, to: statePath)
        guard await eventually({ hub.currentState == state.normalized }) else { throw HarnessError("feed never published the new state") }
    }

    func stop() async {
        watcher?.cancel()
        await watcher?.value
        publisher.cancel()
        _ = await publisher.result
        await server.shutdown()
    }
}

/// A FeedClient's link changes.
final class LinkLog: Sendable {
    private let events = NIOLockedValueBox<[FeedLinkEvent]>([])

    func record(_ event: FeedLinkEvent) { events.withLockedValue { $0.append(event) } }

    var established: Int { events.withLockedValue { $0.filter { $0 == .established }.count } }
    var lost: [String] {
        events.withLockedValue { $0.compactMap { if case let .lost(reason) = $0 { reason } else { nil } } }
    }
}

/// A `curl -N` watch stream running in the background, its output collected.
final class CurlStream {
    private let process = Process()
    private let pipe = Pipe()
    private var drain: PipeDrain?

    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = arguments
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        drain = PipeDrain(pipe.fileHandleForReading)
    }

    var output: String { String(decoding: drain?.current ?? Data(), as: UTF8.self) }
    var isRunning: Bool { process.isRunning }

    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        _ = drain?.finish()
    }
}

/// Runs each job `delay` late on one thread of its own: the tasks that prefer it resume late,
/// as on a busy node, without slowing anything else.
final class LateExecutor: TaskExecutor, @unchecked Sendable {
    private let queue = DispatchQueue(label: "late-executor")
    private let delay: DispatchTimeInterval

    init(delay: DispatchTimeInterval) {
        self.delay = delay
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.asyncAfter(deadline: .now() + delay) {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
