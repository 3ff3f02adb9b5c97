import AsyncHTTPClient
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOSSL
@testable import MirrorKubernetes

// The tests' API server: kmock (a Kubernetes API emulator from PyPI) extended by
// kmock_harness.py with what kmock lacks (resource versions, selectors, watch resume,
// bookmarks, 410, faults; see the script's header for what this does and does not prove).
// Each test starts its own on a free loopback port and stops it at the end.

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

final class KMockServer: @unchecked Sendable {
    let port: Int
    let scheme: String
    private let process: Process
    private let stdin: Pipe
    private let directory: String
    private var errorPath: String { directory + "/stderr" }
    private let control: HTTPClient
    /// The bearer token the server wants (`--token`), sent with this harness's own requests.
    private let token = NIOLockedValueBox<String?>(nil)

    var url: URL { URL(string: "\(scheme)://127.0.0.1:\(port)") ?? URL(fileURLWithPath: "/") }

    private init(port: Int, scheme: String, process: Process, stdin: Pipe, directory: String, control: HTTPClient) {
        self.port = port
        self.scheme = scheme
        self.process = process
        self.stdin = stdin
        self.directory = directory
        self.control = control
    }

    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("kmock_harness.py").path

    /// Starts the harness (on `port`, or a free one) and waits until it listens.
    static func start(port: Int = 0, arguments: [String] = [], pki: TestPKI? = nil) async throws -> KMockServer {
        var arguments = ["python3", script, "--port", String(port)] + arguments
        var tls: TLSConfiguration?
        if let pki {
            arguments += ["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--client-ca", pki.ca]
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .file(pki.ca)
            configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(pki.clientCert).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: pki.clientKey, format: .pem))
            tls = configuration
        }
        // Output goes to files, read by polling: FileHandle readability handlers (dispatch
        // sources) were seen to crash libdispatch when a pipe closed under them.
        let directory = try Fixtures.temporaryDirectory()
        let outPath = directory + "/stdout", errPath = directory + "/stderr"
        guard FileManager.default.createFile(atPath: outPath, contents: nil),
              FileManager.default.createFile(atPath: errPath, contents: nil),
              let stdout = FileHandle(forWritingAtPath: outPath), let stderr = FileHandle(forWritingAtPath: errPath) else {
            throw HarnessError("cannot create the harness's output files in \(directory)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let stdin = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        try? stdout.close()
        try? stderr.close()
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
            if let line = out.split(separator: "\n").first(where: { $0.hasPrefix("LISTENING ") }),
               let listening = Int(line.dropFirst("LISTENING ".count)) {
                let control = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup,
                                         configuration: HTTPClient.Configuration(tlsConfiguration: tls))
                let server = KMockServer(port: listening, scheme: pki == nil ? "http" : "https", process: process, stdin: stdin,
                                         directory: directory, control: control)
                if let index = arguments.firstIndex(of: "--token"), index + 1 < arguments.count {
                    server.token.withLockedValue { $0 = arguments[index + 1] }
                }
                return server
            }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        let hint = err.contains("No module named 'kmock'") ? " (kmock is missing: scripts/install-deps.sh installs it)" : ""
        throw HarnessError("the kmock harness did not start\(hint): \(err)")
    }

    /// Ends the server (closing its stdin; SIGKILL if it lingers) and the control client.
    func stop() async {
        try? stdin.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
        await waitForExit()
        try? await control.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Kills the server at once, as a crashed or unreachable API server.
    func kill() async {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        await waitForExit()
    }

    private func waitForExit() async {
        let deadline = ContinuousClock.now + .seconds(5)
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        while process.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
    }

    /// What the harness wrote to stderr.
    var errors: String { (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "" }

    // MARK: Changes made straight to the server, not through the client under test

    @discardableResult
    func create(_ path: String, _ object: [String: Any]) async throws -> [String: Any] {
        try await request(.POST, path, object)
    }

    /// A merge patch.
    @discardableResult
    func patch(_ path: String, _ changes: [String: Any]) async throws -> [String: Any] {
        try await request(.PATCH, path, changes)
    }

    func delete(_ path: String) async throws {
        _ = try await request(.DELETE, path, nil)
    }

    // MARK: Faults and inspection

    /// Ends every open watch: the connection is cut, or with `clean` the response ends as if
    /// complete; with `partial` half an event goes out first.
    @discardableResult
    func breakWatches(partial: Bool = false, clean: Bool = false) async throws -> Int {
        let query = "?partial=\(partial ? 1 : 0)&clean=\(clean ? 1 : 0)"
        return (try await request(.POST, "/_harness/break-watches" + query, nil))["broken"] as? Int ?? 0
    }

    func refuseWatches() async throws { _ = try await request(.POST, "/_harness/refuse-watches", nil) }
    func acceptWatches() async throws { _ = try await request(.POST, "/_harness/accept-watches", nil) }
    /// Forgets the history: versions older than the current one are now 410.
    func compact() async throws { _ = try await request(.POST, "/_harness/compact", nil) }
    func setToken(_ token: String) async throws {
        _ = try await request(.POST, "/_harness/token", ["token": token])
        self.token.withLockedValue { $0 = token }
    }

    func openWatches() async throws -> Int { try await request(.GET, "/_harness/state", nil)["watches"] as? Int ?? -1 }
    func resourceVersion() async throws -> String { try await request(.GET, "/_harness/state", nil)["resourceVersion"] as? String ?? "" }

    /// Every API request the server received: method, path, query parameters.
    func requests() async throws -> [(method: String, path: String, params: [String: String])] {
        let data = try await raw(.GET, "/_harness/requests", nil)
        let list = try JSONSerialization.jsonObject(with: data) as? [[String: Any]] ?? []
        return list.map { ($0["method"] as? String ?? "", $0["path"] as? String ?? "", $0["params"] as? [String: String] ?? [:]) }
    }

    private func request(_ method: HTTPMethod, _ path: String, _ body: [String: Any]?) async throws -> [String: Any] {
        let data = try await raw(method, path, body)
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    private func raw(_ method: HTTPMethod, _ path: String, _ body: [String: Any]?) async throws -> Data {
        var request = HTTPClientRequest(url: url.absoluteString + path)
        request.method = method
        if let token = token.withLockedValue({ $0 }) { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: method == .PATCH ? "application/merge-patch+json" : "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        }
        let response = try await control.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        let data = Data(bytes.readableBytesView)
        guard (200..<300).contains(response.status.code) else {
            throw HarnessError("\(method) \(path): \(response.status.code) \(String(decoding: data.prefix(300), as: UTF8.self))")
        }
        return data
    }
}

/// Runs `body` with a fresh server, stopping it however `body` ends.
func withKMock<T>(arguments: [String] = [], pki: TestPKI? = nil, _ body: (KMockServer) async throws -> T) async throws -> T {
    let server = try await KMockServer.start(arguments: arguments, pki: pki)
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}

enum Fixtures {
    static let logger: Logger = {
        var logger = Logger(label: "kubernetes-tests") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = ProcessInfo.processInfo.environment["KUBE_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        return logger
    }()

    static let services = "/api/v1/namespaces/default/services"

    static func service(_ name: String, labels: [String: String] = [:], port: Int = 80, namespace: String = "default") -> [String: Any] {
        ["apiVersion": "v1", "kind": "Service",
         "metadata": ["name": name, "namespace": namespace, "labels": labels],
         "spec": ["type": "ClusterIP", "clusterIP": "10.96.0.\(name.utf8.reduce(0) { $0 + Int($1) } % 200 + 10)",
                  "ports": [["name": "http", "protocol": "TCP", "port": port, "targetPort": 8080]]]]
    }

    static let exported = ["mirror.linkerd.io/exported": "true"]

    /// A client of `server` over plain HTTP (the harness's default).
    static func client(_ server: KMockServer, token: BearerToken? = nil) throws -> KubeClient {
        var options = KubeClientOptions()
        options.allowPlainHTTP = true
        options.requestTimeout = .seconds(10)
        return try KubeClient(connection: KubeConnection(server: server.url, token: token, origin: "test"),
                              options: options, logger: logger)
    }

    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "kube-test-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// Runs `body` with `client`, shutting it down however `body` ends.
func using<T>(_ client: KubeClient, _ body: (KubeClient) async throws -> T) async throws -> T {
    do {
        let result = try await body(client)
        try await client.shutdown()
        return result
    } catch {
        try? await client.shutdown()
        throw error
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}
