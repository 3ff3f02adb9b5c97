import ArgumentParser
import Dispatch
import Logging
import NIOCore
import MirrorModel
import MirrorFeed
import MirrorKubernetes
#if canImport(Glibc)
import Glibc
#endif

/// `mirror-agent feed`: serve one cluster's mirror state to every node's agent.
struct Feed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the mirror feed (snapshot, then deltas) that node agents follow.",
        discussion: """
            Builds the mirror state from --source and serves it over HTTPS with client \
            certificates: each watcher gets a snapshot, then one delta per changed cluster or \
            service, and a bookmark every few seconds. An invalid edit of the state file is \
            logged and nothing is published; the previous state stays in force. The protocol \
            is described in docs/feed-protocol.md.

            --source kubernetes follows this cluster's Link objects (multicluster.linkerd.io/\
            v1alpha3, as `linkerd multicluster link` writes them): through each Link's \
            credentials Secret it watches the remote cluster's exported Services and \
            EndpointSlices, keeps a mirror Service <svc>-<cluster> in this cluster (its \
            ClusterIP allocated here; labelled so kube-proxy ignores it), and publishes them. \
            Run several replicas: a Lease elects the one that writes mirror Services, all of \
            them serve. A remote cluster that cannot be reached keeps its last state (shown \
            as stale in `mirror-agent dump --feed` and /metrics); nothing is deleted for it.

            With --exports it also serves this cluster's exports document at /v1/exports, which \
            the gateways (`mirror-agent gateway --feed https://…`) follow over the same TLS. \
            --exports kubernetes builds it from this cluster's exported Services (--export-selector) \
            and their EndpointSlices: each service port gets a stable gateway port from \
            --gateway-port-range, recorded in ConfigMap --gateway-ports-configmap and written on \
            the Service as annotation mirror-agent.io/gateway-ports, which importing clusters \
            read. Replicas never hand out a port twice (the ConfigMap is written with its \
            resourceVersion); a port is freed only once its Service is deleted.

            Probes: GET /healthz (alive), /readyz (a state is loaded), /metrics (Prometheus).
            TLS files are followed: a rotated certificate, key or client CA (an edit, or a \
            Kubernetes Secret's symlink swap) is used for every new handshake within seconds, \
            without a restart; open streams are not cut. Unusable new files are logged and the \
            previous ones stay in force.

            SIGTERM or SIGINT closes the listener and every stream; agents keep their state \
            and resume when a feed answers again.

            Examples:
              mirror-agent feed --source kubernetes --tls-cert feed.pem --tls-key feed.key \
                --client-ca agents-ca.pem --http-listen 0.0.0.0:9154
              mirror-agent feed --source file:/etc/mirror/state.yaml --listen 0.0.0.0:8443 \\
                --tls-cert feed.pem --tls-key feed.key --client-ca agents-ca.pem
              curl --cacert ca.pem --cert agent.pem --key agent.key https://feed:8443/v1/watch
            """
    )

    @Option(help: ArgumentHelp("Where the state comes from: kubernetes (Links and remote clusters; see below), or file:PATH (a state file, YAML or JSON, reloaded when it changes; for labs).", valueName: "source"))
    var source: String

    @Option(help: ArgumentHelp("This cluster's exports document for its gateways: kubernetes (this cluster's exported Services, with --source kubernetes; see below), or file:PATH (YAML or JSON, reloaded when it changes). Served at /v1/exports; an invalid edit is logged and the previous document stays.", valueName: "source"))
    var exports: String?

    @Option(help: ArgumentHelp("Address and port to listen on: 0.0.0.0:8443, [::]:8443, 127.0.0.1:0.", valueName: "addr:port"))
    var listen: String = "0.0.0.0:8443"

    @Option(help: ArgumentHelp("The feed's server certificate (PEM).", valueName: "file"))
    var tlsCert: String?

    @Option(help: ArgumentHelp("The private key (PEM) of --tls-cert.", valueName: "file"))
    var tlsKey: String?

    @Option(help: ArgumentHelp("CA bundle (PEM) agents' client certificates must chain to.", valueName: "file"))
    var clientCA: String?

    @Flag(help: "Serve plain HTTP without client authentication. For tests and labs only.")
    var insecure = false

    @Option(help: ArgumentHelp("How often the state file is checked for changes, in milliseconds.", valueName: "ms"))
    var pollInterval: Int = 500

    @Option(help: ArgumentHelp("Seconds between bookmarks on an idle stream (agents drop a stream silent for about 3 of these).", valueName: "seconds"))
    var bookmarkInterval: Int = 5

    @Option(help: ArgumentHelp("Deltas kept so that reconnecting agents resume instead of downloading a snapshot.", valueName: "count"))
    var history: Int = 10_000

    @Option(help: ArgumentHelp("Unsent MiB a slow watcher may accumulate before it is cut (it then reconnects and resumes).", valueName: "MiB"))
    var maxWatcherBacklog: Int = 8

    @Option(help: ArgumentHelp("Plain-HTTP listener for probes and Prometheus (/healthz, /readyz, /metrics), which need no client certificate; off unless given, e.g. 0.0.0.0:9154.", valueName: "addr:port"))
    var httpListen: String?

    @Option(help: ArgumentHelp("Admin socket that `mirror-agent dump --feed` reads.", valueName: "path"))
    var adminSocket = AdminSocket.feedPath

    @OptionGroup(title: "Kubernetes source")
    var kubernetes: FeedKubernetesOptions

    @OptionGroup(title: "Kubernetes exports (--exports kubernetes)")
    var exportOptions: FeedExportsOptions

    @OptionGroup(title: "Logging")
    var logging: LoggingOptions

    func validate() throws {
        _ = try sourcePath()
        _ = try exportsPath()
        try kubernetes.validate(source: source)
        try exportOptions.validate(exports: exports, source: source)
        if let httpListen { _ = try MirrorAgent.listenAddress(httpListen, flag: "--http-listen", example: "0.0.0.0:9154") }
        _ = try listenAddress()
        if insecure {
            guard tlsCert == nil, tlsKey == nil, clientCA == nil else {
                throw ValidationError("--insecure serves plain HTTP; drop it to use --tls-cert/--tls-key/--client-ca")
            }
        } else if tlsCert == nil || tlsKey == nil || clientCA == nil {
            throw ValidationError("the feed needs --tls-cert, --tls-key and --client-ca (agents authenticate with client certificates), or --insecure for plain HTTP")
        }
        guard pollInterval > 0 else { throw ValidationError("--poll-interval must be at least 1 ms") }
        guard bookmarkInterval > 0 else { throw ValidationError("--bookmark-interval must be at least 1 second") }
        guard history > 0 else { throw ValidationError("--history must be at least 1") }
        guard maxWatcherBacklog > 0 else { throw ValidationError("--max-watcher-backlog must be at least 1 MiB") }
    }

    /// The state file, or nil for the Kubernetes source.
    private func sourcePath() throws -> String? {
        if source == "kubernetes" { return nil }
        guard source.hasPrefix("file:"), source.count > 5 else {
            throw ValidationError("--source \(source): expected kubernetes or file:PATH")
        }
        return String(source.dropFirst(5))
    }

    /// The exports file, or nil without --exports or for `--exports kubernetes`.
    private func exportsPath() throws -> String? {
        guard let exports, !FeedExportsOptions.isKubernetes(exports) else { return nil }
        guard exports.hasPrefix("file:"), exports.count > 5 else {
            throw ValidationError("--exports \(exports): expected kubernetes or file:PATH")
        }
        return String(exports.dropFirst(5))
    }

    private func listenAddress() throws -> (host: String, port: Int) {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("--listen \(listen): expected ADDRESS:PORT, e.g. 0.0.0.0:8443 or [::]:8443")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ValidationError("--listen \(listen): missing address; use 0.0.0.0:\(port) for every interface") }
        return (host, port)
    }

    func run() async throws {
        let logger = logging.makeLogger(label: "mirror-agent.feed")
        let (host, port) = try listenAddress()
        var tls: FeedTLSFiles?
        if let tlsCert, let tlsKey, let clientCA { tls = FeedTLSFiles(certificate: tlsCert, key: tlsKey, ca: clientCA) }
        let material = try tls.map { try TLSReloader(files: $0, side: .server, logger: logger) }
        if material == nil {
            logger.warning("serving plain HTTP (--insecure): anyone who can connect reads the mirror state")
        }
        var hubConfiguration = FeedHub.Configuration()
        hubConfiguration.bookmarkInterval = .seconds(Int64(bookmarkInterval))
        hubConfiguration.historyCount = history
        hubConfiguration.maxWatcherBacklog = maxWatcherBacklog << 20
        let hub = FeedHub(configuration: hubConfiguration)
        let exportsHub = exports == nil ? nil : FeedHub(configuration: hubConfiguration)
        if let material { hub.metrics.follow(material) }
        let source: any MirrorSource
        var kubeClient: KubeClient?
        var kubeSource: KubernetesMirrorSource?
        var kubeExports: KubernetesExportsSource?
        // The feed checks an exports file's structure only; each gateway checks its own range.
        var exportsSource: (any ExportsSource)? = try exportsPath().map {
            FileExportsSource(path: $0, gatewayPorts: .any, logger: logger, onRejected: nil)
        }
        if let path = try sourcePath() {
            source = FileMirrorSource(path: path, pollInterval: .milliseconds(pollInterval), logger: logger)
        } else {
            do {
                let (client, options) = try kubernetes.makeSource(logger: logger)
                let kube = KubernetesMirrorSource(local: client, options: options, logger: logger)
                hub.metrics.collectSource { LinkMetrics.record(kube.status, into: $0) }
                (kubeClient, kubeSource, source) = (client, kube, kube)
                if FeedExportsOptions.isKubernetes(exports) {
                    let exports = try exportOptions.makeSource(client: client, namespace: options.linkNamespace,
                                                               writeQPS: options.writeQPS, writeBurst: options.writeBurst, logger: logger)
                    hub.metrics.collectSource { registry in
                        LinkMetrics.record(kube.status, into: registry)
                        LinkMetrics.record(exports: exports.status, into: registry)
                    }
                    (kubeExports, exportsSource) = (exports, exports)
                }
            } catch {
                printError("mirror-agent feed: --source kubernetes: \(error)")
                throw ExitCode(1)
            }
        }
        let server = try await FeedServer(hub: hub, exportsHub: exportsHub, host: host, port: port, tlsMaterial: material, logger: logger)
        let publisher = FeedPublisher(hub: hub, source: source, logger: logger)
        let listeners = await serveAdminAndProbes(hub: hub, exportsHub: exportsHub, source: source, kubernetes: kubeSource,
                                                  exports: kubeExports, logger: logger)

        let failure: (any Error)? = await withTaskGroup(of: (any Error)?.self) { group in
            group.addTask {
                do {
                    try await publisher.run()
                    return nil
                } catch {
                    return error
                }
            }
            if let exportsHub, let exportsSource {
                group.addTask {
                    do {
                        try await exportsSource.run { document in
                            do {
                                try exportsHub.publishExports(document)
                                logger.info("published exports", metadata: ["revision": "\(exportsHub.revision)", "exports": "\(document.exports.count)"])
                            } catch {
                                logger.error("could not publish the exports", metadata: ["error": "\(error)"])
                            }
                        }
                        return nil
                    } catch {
                        return error
                    }
                }
            }
            if let material {
                // Rotated certificates (cert-manager, an updated Secret) are used for new
                // handshakes within seconds; open streams keep theirs.
                group.addTask {
                    await material.watch()
                    return nil
                }
            }
            group.addTask {
                if let signal = await TerminationSignal.next() {
                    logger.info("shutting down", metadata: ["signal": "\(signal)"])
                }
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        await server.shutdown()
        for channel in listeners.channels { try? await channel.close() }
        AdminSocket.removeIfOwned(path: adminSocket, identity: listeners.adminIdentity)
        try? await kubeClient?.shutdown()
        if let failure, !(failure is CancellationError) {
            printError("mirror-agent feed: \(failure)")
            throw ExitCode(1)
        }
    }
}

extension Feed {
    /// The admin socket for `dump --feed` and, with --http-listen, the plain-HTTP probes and
    /// metrics. Neither is essential: a failure is logged and the feed serves on.
    fileprivate func serveAdminAndProbes(hub: FeedHub, exportsHub: FeedHub?, source: any MirrorSource,
                                         kubernetes: KubernetesMirrorSource?, exports: KubernetesExportsSource?,
                                         logger: Logger) async
        -> (channels: [Channel], adminIdentity: AdminSocket.FileIdentity?) {
        var channels: [Channel] = []
        let description = source.description
        do {
            channels.append(try await AdminSocket.serve(path: adminSocket, logger: logger) {
                let status = FeedStatus(pid: getpid(), source: description, epoch: hub.epoch, revision: hub.revision,
                                        watchers: hub.metrics.watchers, exportsRevision: exportsHub?.revision,
                                        kubernetes: kubernetes?.status, exports: exports.map { FeedStatus.Exports($0.status) })
                return try AdminSocket.encoder().encode(status)
            })
        } catch {
            logger.warning("admin socket unavailable; `mirror-agent dump --feed` will not reach this feed",
                           metadata: ["socket": "\(adminSocket)", "error": "\(error)"])
        }
        let identity = AdminSocket.identity(of: adminSocket)
        if let httpListen, let address = try? MirrorAgent.listenAddress(httpListen, flag: "--http-listen", example: "0.0.0.0:9154") {
            do {
                channels.append(try await TextHTTPServer.serve(on: address, name: "health and metrics endpoint", logger: logger) { path in
                    switch path {
                    case "/healthz": return .ok("ok\n")
                    case "/readyz": return hub.revision > 0 ? .ok("ready\n") : .unavailable("no state published yet\n")
                    case "/metrics": return .metrics(hub.metrics.render())
                    default: return .notFound("/healthz, /readyz or /metrics")
                    }
                })
            } catch {
                logger.error("cannot listen on --http-listen \(httpListen): \(error); probes will fail")
            }
        }
        return (channels, identity)
    }
}

/// Waits for SIGTERM or SIGINT (handled, not fatal, so the feed can close its streams).
enum TerminationSignal {
    /// The signal received, or nil when the waiting task was cancelled.
    static func next() async -> Int32? {
        let (signals, continuation) = AsyncStream.makeStream(of: Int32.self)
        let sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            return source
        }
        defer { sources.forEach { $0.cancel() } }
        for await number in signals { return number }
        return nil
    }
}
