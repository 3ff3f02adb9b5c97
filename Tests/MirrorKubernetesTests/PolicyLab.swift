import AsyncHTTPClient
import Foundation
import MirrorModel
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
@testable import MirrorKubernetes

// Helpers of TrafficSplitSourceTests: the local cluster's side of traffic policies (apex
// Services, their EndpointSlices, TrafficSplits), a feed whose local API can be reached
// through a proxy, and that proxy, which plays an API server without SMI's CRD.

extension SourceLab {
    static func trafficSplitsPath(_ namespace: String) -> String {
        "/apis/split.smi-spec.io/v1alpha2/namespaces/\(namespace)/trafficsplits"
    }

    static func endpointSlicesPath(_ namespace: String) -> String {
        "/apis/discovery.k8s.io/v1/namespaces/\(namespace)/endpointslices"
    }

    /// A local (apex) Service with a fixed ClusterIP, away from the emulator's allocations.
    func addLocalService(_ name: String, namespace: String = "default", clusterIP: String,
                         ports: [[String: Any]] = [["name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080]]) async throws {
        try await local.create(Self.servicesPath(namespace), [
            "apiVersion": "v1", "kind": "Service",
            "metadata": ["name": name, "namespace": namespace, "labels": ["app": name]],
            "spec": ["type": "ClusterIP", "clusterIP": clusterIP, "ports": ports, "selector": ["app": name]],
        ])
    }

    static func endpoints(_ ready: [Bool], base: Int = 1) -> [[String: Any]] {
        ready.enumerated().map { index, ready in
            ["addresses": ["10.244.0.\(base + index)"], "conditions": ["ready": ready, "serving": ready, "terminating": false]]
        }
    }

    /// A local EndpointSlice `<service>-<suffix>` of `service` with one endpoint per entry.
    func addLocalSlice(_ service: String, namespace: String = "default", suffix: String = "x1", ready: [Bool]) async throws {
        try await local.create(Self.endpointSlicesPath(namespace), [
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": ["name": "\(service)-\(suffix)", "namespace": namespace,
                         "labels": ["kubernetes.io/service-name": service]],
            "ports": [["name": "http", "protocol": "TCP", "port": 8080]],
            "endpoints": Self.endpoints(ready),
        ])
    }

    /// Replaces the endpoints of a slice made by ``addLocalSlice(_:namespace:suffix:ready:)``.
    func setLocalSlice(_ service: String, namespace: String = "default", suffix: String = "x1", ready: [Bool]) async throws {
        try await local.patch(Self.endpointSlicesPath(namespace) + "/\(service)-\(suffix)", ["endpoints": Self.endpoints(ready)])
    }

    /// An SMI TrafficSplit in the local cluster.
    func addTrafficSplit(_ name: String, namespace: String = "default", apex: String, backends: [(String, Int)],
                         labels: [String: String] = [:], annotations: [String: String] = [:]) async throws {
        try await local.create(Self.trafficSplitsPath(namespace), [
            "apiVersion": "split.smi-spec.io/v1alpha2", "kind": "TrafficSplit",
            "metadata": ["name": name, "namespace": namespace, "labels": labels, "annotations": annotations],
            "spec": ["service": apex, "backends": backends.map { ["service": $0.0, "weight": $0.1] }],
        ])
    }

    /// A feed (``SourceLab/Running``'s settings) whose local API is `server` (the local
    /// emulator by default, else a proxy in front of it), recording each update.
    func startPolicyFeed(server: URL? = nil, identity: String = "feed-a",
                         configure: (inout KubernetesSourceOptions) -> Void = { _ in }) throws -> PolicyFeed {
        try PolicyFeed(server: server ?? local.url, identity: identity, configure: configure)
    }
}

/// A running Kubernetes source and what it published.
final class PolicyFeed: Sendable {
    let source: KubernetesMirrorSource
    let client: KubeClient
    private let updates = NIOLockedValueBox<[MirrorUpdate]>([])
    private let task: NIOLockedValueBox<Task<Void, Never>?> = NIOLockedValueBox(nil)

    init(server: URL, identity: String, configure: (inout KubernetesSourceOptions) -> Void) throws {
        var clientOptions = KubeClientOptions()
        clientOptions.allowPlainHTTP = true
        clientOptions.requestTimeout = .seconds(10)
        client = try KubeClient(connection: KubeConnection(server: server, token: nil, origin: "test"), options: clientOptions,
                                logger: Fixtures.logger)
        var options = KubernetesSourceOptions(linkNamespace: SourceLab.linkNamespace, identity: identity)
        options.allowPlainHTTPRemotes = true
        options.coalescing = .milliseconds(10)
        options.leaseDuration = .seconds(2)
        options.initialSyncTimeout = .seconds(3)
        options.trafficSplitRetryInterval = .milliseconds(500)
        options.informer.backoff = RetryBackoff(initial: .milliseconds(50), maximum: .milliseconds(300))
        options.informer.watchTimeout = 60...60
        configure(&options)
        source = KubernetesMirrorSource(local: client, options: options, logger: Fixtures.logger)
        let source = source, updates = updates
        task.withLockedValue {
            $0 = Task { try? await source.run { update in updates.withLockedValue { $0.append(update) } } }
        }
    }

    var published: [MirrorUpdate] { updates.withLockedValue { $0 } }
    var state: MirrorState? { updates.withLockedValue { $0.last?.store.state } }

    func service(_ namespace: String, _ name: String) -> MirroredService? {
        state?.services.first { $0.namespace == namespace && $0.mirroredName == name }
    }

    func policy(_ namespace: String, _ name: String) -> TrafficPolicy? {
        state?.policies.first { $0.namespace == namespace && $0.name == name }
    }

    /// The policy as each update from the `from`-th on published it (nil where absent).
    func policyHistory(_ namespace: String, _ name: String, from: Int = 0) -> [TrafficPolicy?] {
        let updates = updates.withLockedValue { $0 }
        return updates.dropFirst(from).map { update in
            update.store.policies[PolicyKey(namespace: namespace, name: name)]
        }
    }

    func stop() async {
        let task = task.withLockedValue { $0 }
        task?.cancel()
        await task?.value
        try? await client.shutdown()
    }
}

/// A proxy in front of an emulator that answers 404 for chosen resources, as an API server
/// without their CRD does (or 403, as for a client without the permission) (the script below, written to a temporary file and run with the
/// emulator's python3); ``serve(_:)`` installs the CRD, ``hide(_:)`` deletes it.
final class CRDProxy: @unchecked Sendable {
    let url: URL
    private let process: Process
    private let stdin: Pipe
    private let directory: String
    private let control: HTTPClient

    private init(url: URL, process: Process, stdin: Pipe, directory: String) {
        self.url = url
        self.process = process
        self.stdin = stdin
        self.directory = directory
        control = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
    }

    static func start(upstream: KMockServer, missing: [String], forbidden: [String] = []) async throws -> CRDProxy {
        let directory = try Fixtures.temporaryDirectory()
        let scriptPath = directory + "/kmock_crd_proxy.py", outPath = directory + "/stdout", errPath = directory + "/stderr"
        try script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        guard FileManager.default.createFile(atPath: outPath, contents: nil),
              FileManager.default.createFile(atPath: errPath, contents: nil),
              let stdout = FileHandle(forWritingAtPath: outPath), let stderr = FileHandle(forWritingAtPath: errPath) else {
            throw HarnessError("cannot create the proxy's files in \(directory)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", scriptPath, "--upstream", upstream.url.absoluteString] + missing.flatMap { ["--missing", $0] }
            + forbidden.flatMap { ["--forbidden", $0] }
        let stdin = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        try? stdout.close()
        try? stderr.close()
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline, process.isRunning {
            let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
            if let line = out.split(separator: "\n").first(where: { $0.hasPrefix("LISTENING ") }),
               let port = Int(line.dropFirst("LISTENING ".count)), let url = URL(string: "http://127.0.0.1:\(port)") {
                return CRDProxy(url: url, process: process, stdin: stdin, directory: directory)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        throw HarnessError("the CRD proxy did not start: \((try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")")
    }

    /// Serve `resource` from now on: its CRD was installed.
    func serve(_ resource: String) async throws { _ = try await request(.POST, "/_proxy/serve?resource=\(resource)") }
    /// 404 for `resource` again, its open watches cut: its CRD was deleted.
    func hide(_ resource: String) async throws { _ = try await request(.POST, "/_proxy/hide?resource=\(resource)") }

    /// How many requests for `resource` were answered 404 or 403.
    func refused(_ resource: String) async throws -> Int {
        let state = try JSONSerialization.jsonObject(with: try await request(.GET, "/_proxy/state")) as? [String: Any]
        return (state?["refused"] as? [String: Int])?[resource] ?? 0
    }

    private func request(_ method: HTTPMethod, _ path: String) async throws -> Data {
        var request = HTTPClientRequest(url: url.absoluteString + path)
        request.method = method
        let response = try await control.execute(request, timeout: .seconds(10))
        let body = Data(try await response.body.collect(upTo: 1 << 20).readableBytesView)
        guard response.status == .ok else { throw HarnessError("\(method) \(path): \(response.status)") }
        return body
    }

    func stop() async {
        try? stdin.fileHandleForWriting.close()
        let deadline = ContinuousClock.now + .seconds(5)
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        while process.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
        try? await control.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs `body` with a proxy in front of `upstream`, stopping it however `body` ends.
    static func with<T>(upstream: KMockServer, missing: [String] = [], forbidden: [String] = [],
                        _ body: (CRDProxy) async throws -> T) async throws -> T {
        let proxy = try await start(upstream: upstream, missing: missing, forbidden: forbidden)
        do {
            let result = try await body(proxy)
            await proxy.stop()
            return result
        } catch {
            await proxy.stop()
            throw error
        }
    }

    static let script = #"""
#!/usr/bin/env python3
"""A pass-through proxy in front of kmock_harness.py that answers 404 for chosen resources,
as an API server without their CustomResourceDefinition does (for TrafficSplitSourceTests:
SMI's TrafficSplit CRD is optional).

With --forbidden PLURAL it answers 403 instead, as for a client whose RBAC lacks the
resource. Every other request goes to --upstream unchanged (bodies and watch streams are
relayed as they come). Control, under /_proxy/:
- POST /_proxy/serve?resource=PLURAL: serve it from now on (the CRD was installed);
- POST /_proxy/hide?resource=PLURAL: 404 again, and cut the open requests for it (the CRD
  was deleted: a real server ends those watches);
- GET /_proxy/state: {"missing": [...], "refused": {PLURAL: count of 404s answered}}.

Prints "LISTENING <port>" once serving; exits when its stdin closes or on SIGTERM.
"""
import argparse
import asyncio
import os
import signal
import sys

import aiohttp
import aiohttp.web

NOT_FOUND = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure',
             'message': 'the server could not find the requested resource', 'reason': 'NotFound',
             'details': {}, 'code': 404}
FORBIDDEN = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure',
             'message': 'the test forbids this resource', 'reason': 'Forbidden', 'details': {}, 'code': 403}


def plural_of(path):
    """The resource of /apis/GROUP/VERSION/[namespaces/NS/]PLURAL[/...], else None."""
    parts = path.split('/')
    if len(parts) < 5 or parts[1] != 'apis':
        return None
    if parts[4] == 'namespaces' and len(parts) >= 7:
        return parts[6]
    return parts[4]


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--upstream', required=True)
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--missing', action='append', default=[])
    parser.add_argument('--forbidden', action='append', default=[])
    args = parser.parse_args()
    missing = set(args.missing)
    forbidden = set(args.forbidden)
    refused = {}
    open_requests = {}  # plural -> {id: request} of the requests being relayed
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None), auto_decompress=False)

    async def control(request):
        action = request.path[len('/_proxy/'):]
        resource = request.query.get('resource', '')
        if action == 'serve':
            missing.discard(resource)
            forbidden.discard(resource)
        elif action == 'hide':
            missing.add(resource)
            for relayed in list(open_requests.get(resource, {}).values()):
                if relayed.transport is not None:
                    relayed.transport.close()
        elif action != 'state':
            return aiohttp.web.json_response({'error': f'unknown action {action}'}, status=404)
        return aiohttp.web.json_response({'missing': sorted(missing), 'refused': refused})

    async def handle(request):
        if request.path.startswith('/_proxy/'):
            return await control(request)
        plural = plural_of(request.path)
        if plural in missing or plural in forbidden:
            refused[plural] = refused.get(plural, 0) + 1
            if plural in missing:
                return aiohttp.web.json_response(NOT_FOUND, status=404)
            return aiohttp.web.json_response(FORBIDDEN, status=403)
        body = await request.read()
        headers = {key: value for key, value in request.headers.items()
                   if key.lower() in ('authorization', 'content-type', 'accept')}
        open_requests.setdefault(plural, {})[id(request)] = request
        try:
            async with session.request(request.method, args.upstream + request.path_qs, data=body or None,
                                       headers=headers) as upstream:
                response = aiohttp.web.StreamResponse(status=upstream.status)
                if 'Content-Type' in upstream.headers:
                    response.headers['Content-Type'] = upstream.headers['Content-Type']
                await response.prepare(request)
                try:
                    async for chunk in upstream.content.iter_any():
                        await response.write(chunk)
                except (aiohttp.ClientError, asyncio.IncompleteReadError):
                    # The upstream cut the stream (a broken watch): cut ours the same way.
                    if request.transport is not None:
                        request.transport.close()
                    return response
                await response.write_eof()
                return response
        finally:
            open_requests[plural].pop(id(request), None)

    app = aiohttp.web.Application()
    app.router.add_route('*', '/{tail:.*}', handle)
    runner = aiohttp.web.AppRunner(app, access_log=None)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, '127.0.0.1', args.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f'LISTENING {port}', flush=True)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    class StdinClosed(asyncio.Protocol):
        def connection_lost(self, exc):
            stop.set()
    await loop.connect_read_pipe(StdinClosed, sys.stdin)
    await stop.wait()
    # No graceful shutdown: it would wait for the relayed watches to end.
    os._exit(0)


if __name__ == '__main__':
    asyncio.run(main())
"""#
}
