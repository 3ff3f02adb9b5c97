import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import MirrorModel
@testable import MirrorFeed

// Shared pieces of the feed tests: sample states, a feed harness over a real state file and a
// real listener on a free loopback port, recording clients, a PKI made with openssl, and
// small helpers to run curl and the mirror-agent binary.

enum FeedFixtures {
    static let logger: Logger = {
        var logger = Logger(label: "feed-tests") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = ProcessInfo.processInfo.environment["FEED_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        return logger
    }()

    /// One gateway cluster `paris` and `count` gateway-mode services `svc-N` in `default`.
    static func state(services count: Int, port: Int = 80, extraClusters: [String] = []) -> MirrorState {
        var clusters = [Cluster(name: "paris", gateway: Gateway(addresses: ["10.99.1.2"]))]
        for (index, name) in extraClusters.enumerated() {
            clusters.append(Cluster(name: name, gateway: Gateway(addresses: ["10.99.\(index + 2).2"])))
        }
        let services = (0..<count).map { service($0, port: port) }
        return MirrorState(clusters: clusters, services: services)
    }

    static func service(_ index: Int, cluster: String = "paris", port: Int = 80) -> MirroredService {
        MirroredService(name: "svc-\(index)", namespace: "default", cluster: cluster, mode: .gateway,
                        ips: ["10.112.\(index / 250).\(index % 250 + 1)"], ports: [ServicePort(name: "http", port: port)])
    }

    /// A remote-discovery service with `endpoints` endpoints (to make big deltas).
    static func flatService(_ index: Int, endpoints: Int) -> MirroredService {
        MirroredService(name: "flat-\(index)", namespace: "default", cluster: "paris", mode: .remoteDiscovery,
                        ips: ["10.113.\(index / 250).\(index % 250 + 1)"], ports: [ServicePort(port: 80, targetPort: 8080)],
                        endpoints: (0..<endpoints).map { Endpoint(ip: "10.20.\($0 / 250).\($0 % 250 + 1)", hostname: "pod-\($0)") })
    }

    /// A fresh temporary directory.
    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "feed-test-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Replaces `path` atomically with `text` (as editors and ConfigMap updates do).
    static func write(_ text: String, to path: String) throws {
        let temporary = path + ".tmp-" + UUID().uuidString.prefix(6)
        try Data(text.utf8).write(to: URL(fileURLWithPath: temporary))
        _ = rename(temporary, path)
    }

    static func write(_ state: MirrorState, to path: String) throws {
        try write(String(decoding: try state.canonicalJSON(pretty: true), as: UTF8.self), to: path)
    }
}

extension MirrorState {
    /// Clusters, services and policies in the store's order, so states compare by content.
    var normalized: MirrorState {
        MirrorState(clusterDomain: clusterDomain, clusters: clusters.sorted { $0.name < $1.name }, services: services.sorted { $0.key < $1.key },
                    policies: policies.sorted { $0.key < $1.key })
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

/// A feed server on a free loopback port, fed from a real state file.
struct FeedHarness {
    let directory: String
    let statePath: String
    let hub: FeedHub
    let server: FeedServer
    let port: Int
    private let publisher: Task<Void, any Error>

    static func start(_ state: MirrorState, tls: FeedTLSFiles? = nil, port: Int = 0,
                      configure: (inout FeedHub.Configuration) -> Void = { _ in }) async throws -> FeedHarness {
        let directory = try FeedFixtures.temporaryDirectory()
        let statePath = directory + "/state.json"
        try FeedFixtures.write(state, to: statePath)
        var configuration = FeedHub.Configuration()
        configuration.bookmarkInterval = .seconds(1)
        configure(&configuration)
        let hub = FeedHub(configuration: configuration)
        let server = try await FeedServer(hub: hub, host: "127.0.0.1", port: port, tls: try tls?.makeServerContext(), logger: FeedFixtures.logger)
        let source = FileMirrorSource(path: statePath, pollInterval: .milliseconds(20), logger: FeedFixtures.logger)
        let publisher = Task { try await FeedPublisher(hub: hub, source: source, logger: FeedFixtures.logger).run() }
        guard await eventually({ hub.isReady }) else { throw HarnessError("feed never loaded \(statePath)") }
        return FeedHarness(directory: directory, statePath: statePath, hub: hub, server: server,
                           port: server.localAddress?.port ?? 0, publisher: publisher)
    }

    /// Writes a new state file and waits until the feed serves it.
    func publish(_ state: MirrorState) async throws {
        try FeedFixtures.write(state, to: statePath)
        guard await eventually({ hub.currentState == state.normalized }) else { throw HarnessError("feed never published the new state") }
    }

    func endpoint(scheme: String = "http") throws -> FeedEndpoint {
        try FeedEndpoint(url: "\(scheme)://127.0.0.1:\(port)")
    }

    func stop() async {
        publisher.cancel()
        _ = await publisher.result
        await server.shutdown()
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A real ``FeedClient`` running in a task, recording every update it hands on.
final class RecordingClient: Sendable {
    private let updates = NIOLockedValueBox<[MirrorUpdate]>([])
    private let task: NIOLockedValueBox<Task<Void, any Error>?> = NIOLockedValueBox(nil)

    init(_ configuration: FeedClient.Configuration) {
        let client = FeedClient(configuration: configuration, logger: FeedFixtures.logger)
        let updates = self.updates
        task.withLockedValue {
            $0 = Task { try await client.run { update in updates.withLockedValue { $0.append(update) } } }
        }
    }

    static func plain(_ endpoint: FeedEndpoint, stateDirectory: String? = nil,
                      configure: (inout FeedClient.Configuration) -> Void = { _ in }) -> RecordingClient {
        var configuration = FeedClient.Configuration(endpoint: endpoint, tls: nil, stateDirectory: stateDirectory)
        configuration.initialBackoff = .milliseconds(20)
        configuration.maxBackoff = .milliseconds(200)
        configuration.persistInterval = .zero
        configure(&configuration)
        return RecordingClient(configuration)
    }

    var all: [MirrorUpdate] { updates.withLockedValue { $0 } }
    var latest: MirrorStore? { updates.withLockedValue { $0.last?.store } }

    /// Waits until the client holds `revision` of a state equal to `state`.
    func waitFor(_ state: MirrorState?, revision: UInt64? = nil, timeout: Duration = .seconds(10)) async -> Bool {
        await eventually(timeout: timeout) {
            guard let latest else { return false }
            return (state == nil || latest.state == state?.normalized) && (revision == nil || latest.revision == revision)
        }
    }

    func stop() async {
        let task = task.withLockedValue { $0 }
        task?.cancel()
        _ = await task?.result
    }
}

/// Runs a program and returns its exit status, stdout and stderr.
@discardableResult
func runProgram(_ path: String, _ arguments: [String], timeout: TimeInterval = 20) throws -> (status: Int32, out: String, err: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read while waiting so a chatty child never blocks on a full pipe.
    let outData = PipeDrain(out.fileHandleForReading), errData = PipeDrain(err.fileHandleForReading)
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning, Date() < deadline { usleep(10_000) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outData.finish(), as: UTF8.self), String(decoding: errData.finish(), as: UTF8.self))
}

/// Reads a pipe to its end on a thread of its own (blocking reads), keeping what arrived so far
/// readable. Not `readabilityHandler`: its dispatch source on the pipe's descriptor crashed the
/// test process in libdispatch's event loop now and then (a descriptor closed and reused while
/// still registered).
final class PipeDrain: @unchecked Sendable {
    private let data = NIOLockedValueBox(Data())
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        let data = self.data, done = self.done
        Thread.detachNewThread {
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                data.withLockedValue { $0.append(chunk) }
            }
            done.signal()
        }
    }

    /// What arrived so far.
    var current: Data { data.withLockedValue { $0 } }

    /// Waits for the end of the pipe (the writer closed it, e.g. exited) and returns everything.
    func finish() -> Data {
        done.wait()
        done.signal()
        return current
    }
}

/// A CA, a server certificate for 127.0.0.1/localhost, a client certificate, and a client
/// certificate from another CA, made once per test process with openssl.
struct TestPKI: Sendable {
    let directory: String
    var ca: String { directory + "/ca.pem" }
    var serverCert: String { directory + "/server.pem" }
    var serverKey: String { directory + "/server.key" }
    var clientCert: String { directory + "/client.pem" }
    var clientKey: String { directory + "/client.key" }
    var otherCA: String { directory + "/other-ca.pem" }
    var otherClientCert: String { directory + "/other-client.pem" }
    var otherClientKey: String { directory + "/other-client.key" }

    var serverFiles: FeedTLSFiles { FeedTLSFiles(certificate: serverCert, key: serverKey, ca: ca) }
    var clientFiles: FeedTLSFiles { FeedTLSFiles(certificate: clientCert, key: clientKey, ca: ca) }

    private static let made = NIOLockedValueBox<Result<TestPKI, HarnessError>?>(nil)

    static func shared() throws -> TestPKI {
        try made.withLockedValue { made in
            if made == nil { made = Result { try TestPKI.make() }.mapError { HarnessError("\($0)") } }
            return try made!.get()
        }
    }

    private static func make() throws -> TestPKI {
        TestPKI(directory: try makeTestCertificates("""
            ca ca 2
            ca other-ca 2
            leaf server ca 2 'subjectAltName=IP:127.0.0.1,DNS:localhost
            extendedKeyUsage=serverAuth'
            leaf client ca 2 'extendedKeyUsage=clientAuth'
            leaf other-client other-ca 2 'extendedKeyUsage=clientAuth'
            """))
    }
}

/// Runs `commands` with openssl in a new temporary directory and returns it. The commands
/// use three shell functions: `key FILE`, `ca NAME DAYS` (NAME.key, NAME.pem) and
/// `leaf NAME CA DAYS EXTENSIONS` (an EC P-256 certificate signed by CA).
func makeTestCertificates(_ commands: String) throws -> String {
    let directory = try FeedFixtures.temporaryDirectory()
    let script = """
        set -e
        cd '\(directory)'
        key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
        ca() { key "$1.key"; openssl req -x509 -new -key "$1.key" -out "$1.pem" -days "$2" -subj "/CN=$1" \
                 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null; }
        leaf() { key "$1.key"; openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
                 printf '%s\n' "$4" > "$1.ext"
                 openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -out "$1.pem" -days "$3" -extfile "$1.ext" 2>/dev/null; }
        \(commands)
        """
    let result = try runProgram("/bin/sh", ["-c", script])
    guard result.status == 0 else { throw HarnessError("openssl failed: \(result.err)") }
    return directory
}

/// The mirror-agent binary built next to the tests (scripts/test.sh builds it first).
func mirrorAgentBinary() throws -> String {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    for configuration in ["debug", "release"] {
        let path = root.appendingPathComponent(".build/\(configuration)/mirror-agent").path
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    throw HarnessError("mirror-agent is not built; run `swift build` first")
}
