import AsyncHTTPClient
import Foundation
import MirrorKubernetes
import MirrorModel
import NIOConcurrencyHelpers
import NIOCore

/// `mirror-agent check --links`: for each Link of the local cluster, whether the feed can use
/// it — credentials Secret present and its kubeconfig valid, the remote API server reachable
/// and granting what the feed needs, each gateway address answering its probe. Every check is
/// bounded in time; the Links are checked at once, so the whole run takes about the longest
/// single timeout.
struct LinkChecks {
    typealias Result = Preflight.Result

    var local: KubeConnection
    var namespace: String
    var allowPlainHTTP: Bool
    /// For each API request (local and remote).
    var requestTimeout: Duration = .seconds(10)
    var resolver: any GatewayResolver = SystemGatewayResolver()

    /// The local cluster as kubectl would pick it: --kubeconfig, else $KUBECONFIG or
    /// ~/.kube/config, else (in a pod, with neither) the pod's service account (`inPod`).
    static func localConnection(kubeconfig: String?, context: String?, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> (connection: KubeConnection, inPod: Bool) {
        if let kubeconfig { return (try KubeConfig.load(path: kubeconfig).connection(context: context), false) }
        let path = KubeConfig.defaultPath(environment: environment)
        let inPod = !(environment["KUBERNETES_SERVICE_HOST"] ?? "").isEmpty
        if !(environment["KUBECONFIG"] ?? "").isEmpty || FileManager.default.fileExists(atPath: path) || !inPod || context != nil {
            return (try KubeConfig.load(path: path).connection(context: context), false)
        }
        return (try KubeConnection.inCluster(environment: environment), true)
    }

    private var clientOptions: KubeClientOptions {
        var options = KubeClientOptions()
        options.allowPlainHTTP = allowPlainHTTP
        options.requestTimeout = requestTimeout
        options.connectTimeout = min(requestTimeout, .seconds(5))
        return options
    }

    func run() async -> [Result] {
        let localName = "local cluster"
        let client: KubeClient
        do {
            client = try KubeClient(connection: local, options: clientOptions)
        } catch {
            return [Result(name: localName, passed: false, detail: "\(error)" + plainHTTPHint(error))]
        }
        var results = [Result(name: localName, passed: true, detail: "\(local.server.absoluteString) (\(local.origin))")]
        let links: [LinkerdLink]
        do {
            links = try await client.listAll(LinkerdLink.self, namespace: namespace).items.sorted { $0.metadata.name < $1.metadata.name }
        } catch {
            try? await client.shutdown()
            let detail: String = switch error {
            case KubeError.notFound: "cannot list Links: the Link CRD is not installed (kubectl apply -k deploy/crds): \(error)"
            case KubeError.unauthorized: "may not list Links in \(namespace): \(error)"
            default: "cannot list Links in \(namespace): \(error)"
            }
            return results + [Result(name: "links in \(namespace)", passed: false, detail: detail)]
        }
        guard !links.isEmpty else {
            try? await client.shutdown()
            return results + [Result(name: "links in \(namespace)", passed: true,
                                     detail: "none: nothing to check (Links are read in --link-namespace; create them with mirror-agent link)",
                                     warning: true)]
        }
        results.append(Result(name: "links in \(namespace)", passed: true,
                              detail: "\(links.count): " + links.map(\.metadata.name).joined(separator: ", ")))
        let perLink = await withTaskGroup(of: (Int, [Result]).self) { group in
            for (index, link) in links.enumerated() {
                group.addTask { (index, await self.check(link, local: client)) }
            }
            var collected: [(Int, [Result])] = []
            for await entry in group { collected.append(entry) }
            return collected.sorted { $0.0 < $1.0 }.flatMap(\.1)
        }
        try? await client.shutdown()
        return results + perLink
    }

    /// One Link's checks: its credentials, then the remote API and the gateways at once.
    private func check(_ link: LinkerdLink, local: KubeClient) async -> [Result] {
        let name = link.metadata.name
        let (credentials, connection) = await credentialsCheck(link, local: local)
        async let gateways = gatewayChecks(link)
        var results = [credentials]
        if let connection { results += await remoteChecks(name, connection) }
        return results + (await gateways)
    }

    private func credentialsCheck(_ link: LinkerdLink, local: KubeClient) async -> (Result, KubeConnection?) {
        let label = "link \(link.metadata.name): credentials"
        guard let secretName = link.spec.clusterCredentialsSecret, !secretName.isEmpty else {
            return (Result(name: label, passed: false, detail: "the Link has no spec.clusterCredentialsSecret"), nil)
        }
        let object = "Secret \(namespace)/\(secretName)"
        let secret: KubeSecret
        do {
            secret = try await local.get(KubeSecret.self, namespace: namespace, name: secretName)
        } catch KubeError.notFound {
            return (Result(name: label, passed: false,
                           detail: "\(object) not found: create it with mirror-agent link --kubeconfig REMOTE --cluster-name \(link.spec.targetClusterName ?? link.metadata.name) … | kubectl apply -f -"), nil)
        } catch {
            return (Result(name: label, passed: false, detail: "cannot read \(object): \(error)"), nil)
        }
        let connection: KubeConnection
        do {
            connection = try secret.kubeconfig().connection(context: nil)
        } catch {
            // KubeConfigError names the Secret and the field.
            return (Result(name: label, passed: false, detail: "\(error)".replacingOccurrences(of: "\n", with: "; ")), nil)
        }
        let user = connection.token != nil ? "bearer token" : connection.clientKey != nil ? "client certificate" : "no credentials"
        var detail = "\(object): kubeconfig valid (server \(connection.server.absoluteString), \(user))"
        var warning = false
        if secret.type != LinkManifests.Local.secretType {
            detail += "; type is \(secret.type ?? "(none)"), not \(LinkManifests.Local.secretType)"
            warning = true
        }
        return (Result(name: label, passed: true, detail: detail, warning: warning), connection)
    }

    /// Reachable: the server answers a list of services at all (with latency). Authorized: it
    /// allows listing services and endpointslices in every namespace, what the feed watches.
    private func remoteChecks(_ link: String, _ connection: KubeConnection) async -> [Result] {
        let reach = "link \(link): remote API", access = "link \(link): remote access"
        let client: KubeClient
        do {
            client = try KubeClient(connection: connection, options: clientOptions)
        } catch {
            return [Result(name: reach, passed: false, detail: "\(error)" + plainHTTPHint(error))]
        }
        let server = connection.server.absoluteString
        let started = ContinuousClock.now
        var failure: (any Error)?
        do {
            _ = try await client.list(KubeService.self, options: ListOptions(limit: 1))
        } catch {
            failure = error
        }
        let latency = ContinuousClock.now - started
        if failure == nil {
            do {
                _ = try await client.list(KubeEndpointSlice.self, options: ListOptions(limit: 1))
            } catch {
                failure = error
            }
        }
        try? await client.shutdown()
        guard let failure else {
            return [Result(name: reach, passed: true, detail: "\(server) answered in \(Self.milliseconds(latency))"),
                    Result(name: access, passed: true, detail: "may list services and endpointslices")]
        }
        switch failure {
        case KubeError.transport, KubeError.timedOut:
            return [Result(name: reach, passed: false, detail: "\(server): \(failure)")]
        case KubeError.unauthorized(let status) where status.code == 401:
            return [Result(name: reach, passed: true, detail: "\(server) answered in \(Self.milliseconds(latency))"),
                    Result(name: access, passed: false,
                           detail: "\(status): the remote API server refuses these credentials (token revoked, or its ServiceAccount deleted); print a new Secret with mirror-agent link")]
        case KubeError.unauthorized(let status):
            return [Result(name: reach, passed: true, detail: "\(server) answered in \(Self.milliseconds(latency))"),
                    Result(name: access, passed: false,
                           detail: "\(status): the feed needs get/list/watch on services and endpointslices in every namespace; apply mirror-agent link --remote-rbac in the remote cluster")]
        default:
            return [Result(name: reach, passed: true, detail: "\(server) answered in \(Self.milliseconds(latency))"),
                    Result(name: access, passed: false, detail: "listing services and endpointslices: \(failure)")]
        }
    }

    /// Probes every gateway address as the feed does: `GET http://<address>:<port><path>`,
    /// names resolved to every address they have.
    private func gatewayChecks(_ link: LinkerdLink) async -> [Result] {
        let label = "link \(link.metadata.name): gateway"
        let entries = link.spec.gatewayAddresses
        guard !entries.isEmpty else {
            return [Result(name: label, passed: true, detail: "no gatewayAddress: remote discovery only, nothing to probe", warning: true)]
        }
        let probe = ProbeSettings(link.spec.probeSpec)
        var results: [Result] = []
        if link.spec.probeSpec == nil {
            results.append(Result(name: "link \(link.metadata.name): probeSpec", passed: true,
                                  detail: "none: the feed does not probe this gateway and always publishes it alive; probed here with /ready on 4191",
                                  warning: true))
        } else if !probe.problems.isEmpty {
            results.append(Result(name: "link \(link.metadata.name): probeSpec", passed: true,
                                  detail: probe.problems.joined(separator: "; "), warning: true))
        }
        let perEntry = await withTaskGroup(of: (Int, [Result]).self) { group in
            for (index, entry) in entries.enumerated() {
                group.addTask { (index, await self.probeEntry(entry, label: label, probe: probe)) }
            }
            var collected: [(Int, [Result])] = []
            for await entry in group { collected.append(entry) }
            return collected.sorted { $0.0 < $1.0 }.flatMap(\.1)
        }
        return results + perEntry
    }

    private func probeEntry(_ entry: String, label: String, probe: ProbeSettings) async -> [Result] {
        if let address = IPAddressText.canonical(entry)?.text {
            return [await probeAddress(address, label: label, probe: probe, entry: nil)]
        }
        let resolver = resolver
        let addresses: [String]
        do {
            guard let found = try await bounded(probe.timeout, { try await resolver.addresses(of: entry) }) else {
                return [Result(name: "\(label) \(entry)", passed: false, detail: "cannot resolve \(entry) within \(Self.seconds(probe.timeout))")]
            }
            addresses = found
        } catch {
            return [Result(name: "\(label) \(entry)", passed: false, detail: "\(error)")]
        }
        guard !addresses.isEmpty else { return [Result(name: "\(label) \(entry)", passed: false, detail: "\(entry) has no address")] }
        return await withTaskGroup(of: (Int, Result).self) { group in
            for (index, address) in addresses.enumerated() {
                group.addTask { (index, await self.probeAddress(address, label: label, probe: probe, entry: entry)) }
            }
            var collected: [(Int, Result)] = []
            for await result in group { collected.append(result) }
            return collected.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    private func probeAddress(_ address: String, label: String, probe: ProbeSettings, entry: String?) async -> Result {
        let host = address.contains(":") ? "[\(address)]" : address
        let name = "\(label) \(host):\(probe.port)" + (entry.map { " (\($0))" } ?? "")
        let timeout = TimeAmount.nanoseconds(Self.nanoseconds(probe.timeout))
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow,
                                                     timeout: HTTPClient.Configuration.Timeout(connect: timeout, read: timeout))
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 1
        // One attempt, as the feed's prober makes: a refused connection is reported at once.
        configuration.connectionPool.retryConnectionEstablishment = false
        let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        let started = ContinuousClock.now
        let outcome: Swift.Result<(UInt, String), any Error>
        do {
            let status = try await bounded(probe.timeout + .milliseconds(500)) {
                var request = HTTPClientRequest(url: "http://\(host):\(probe.port)\(probe.path)")
                request.headers.add(name: "User-Agent", value: "mirror-agent-check")
                // A fresh connection, as the feed's probe makes.
                request.headers.add(name: "Connection", value: "close")
                let response = try await http.execute(request, timeout: timeout)
                _ = try? await response.body.collect(upTo: 64 << 10)
                return (response.status.code, response.status.reasonPhrase)
            }
            outcome = status.map { .success($0) } ?? .failure(HTTPClientError.deadlineExceeded)
        } catch {
            outcome = .failure(error)
        }
        let latency = ContinuousClock.now - started
        try? await http.shutdown()
        switch outcome {
        case .success(let (code, reason)) where (200..<300).contains(code):
            return Result(name: name, passed: true, detail: "GET \(probe.path): \(code) \(reason) in \(Self.milliseconds(latency))")
        case .success(let (code, reason)):
            return Result(name: name, passed: false,
                          detail: "GET \(probe.path): \(code) \(reason) in \(Self.milliseconds(latency)): it answers but is not ready (tables not programmed, or exports stale: mirror-agent dump --gateway on that node)")
        case .failure(let error):
            return Result(name: name, passed: false, detail: "GET \(probe.path): " + Self.describe(error, probe: probe))
        }
    }

    private static func describe(_ error: any Error, probe: ProbeSettings) -> String {
        if let error = error as? HTTPClientError, [.deadlineExceeded, .connectTimeout, .readTimeout].contains(error) {
            return "no answer within \(seconds(probe.timeout)) (probeSpec.timeout): a firewall dropping port \(probe.port), or a wrong address"
        }
        let text = "\(error)"
        if text.lowercased().contains("refused") {
            return "connection refused: nothing listens on port \(probe.port) there (is mirror-agent gateway running, with --probe-listen on that port?)"
        }
        return text
    }

    private func plainHTTPHint(_ error: any Error) -> String {
        "\(error)".contains("only https is allowed") && !allowPlainHTTP ? " (--allow-plain-http for test servers)" : ""
    }

    static func milliseconds(_ duration: Duration) -> String {
        let ms = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        return ms < 10 ? String(format: "%.1f ms", ms) : String(format: "%.0f ms", ms)
    }

    static func seconds(_ duration: Duration) -> String {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return seconds == seconds.rounded() ? "\(Int(seconds)) s" : String(format: "%.3g s", seconds)
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
    }
}

/// A Link's probeSpec read as the feed's prober reads it (``LinkerdProbeSpec/resolved``).
struct ProbeSettings: Sendable {
    var path = "/ready"
    var port = 4191
    var period: Duration = .seconds(3)
    var timeout: Duration = .seconds(3)
    var problems: [String] = []

    init(_ spec: LinkerdProbeSpec?) {
        guard let resolved = spec?.resolved else { return }
        (path, port, period, timeout, problems) = (resolved.path, resolved.port, resolved.period, resolved.timeout, resolved.problems)
    }

    /// Go's duration text, as Linkerd writes probe periods.
    static func duration(_ text: String) -> Duration? { GoDuration.parse(text) }
}

/// Runs `operation`; nil when it has not finished after `limit` (it is then cancelled and
/// not waited for: a blocking name lookup cannot hold the check up).
func bounded<Value: Sendable>(_ limit: Duration, _ operation: @escaping @Sendable () async throws -> Value) async throws -> Value? {
    let waiting = NIOLockedValueBox<CheckedContinuation<Value?, any Error>?>(nil)
    return try await withCheckedThrowingContinuation { continuation in
        waiting.withLockedValue { $0 = continuation }
        let work = Task {
            let result: Swift.Result<Value?, any Error>
            do {
                result = .success(try await operation())
            } catch {
                result = .failure(error)
            }
            waiting.withLockedValue { $0.take() }?.resume(with: result)
        }
        Task {
            try? await Task.sleep(for: limit)
            guard let continuation = waiting.withLockedValue({ $0.take() }) else { return }
            work.cancel()
            continuation.resume(returning: nil)
        }
    }
}
