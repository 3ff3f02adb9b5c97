import ArgumentParser
import Foundation
import Logging
import NFTables
import NIOCore
import ServiceLifecycle
import MirrorModel
import MirrorFeed

/// `mirror-agent gateway`: the exporting cluster's gateway. Each exported service port has its
/// own gateway port; the gateway DNATs `gatewayIP:gatewayPort` to the service's ready pods.
struct Gateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a gateway of the exporting cluster: route each exported service port's gateway port to its ready pods.",
        discussion: """
            Importing clusters rewrite a mirrored service's ClusterIP:port to GATEWAY-IP:GATEWAY-PORT; \
            the gateway port says which service the connection is for (a kernel-only data path \
            cannot carry the name in-band, as a proxy inside mTLS would). This command follows \
            the exports document given by --feed and programs the ip/ip6 mirror-gateway tables: \
            each gateway port is DNATed to the service's ready endpoints (several are spread at \
            random), masqueraded so replies return through the gateway; a port with no ready \
            endpoint is refused at once (TCP reset, ICMP port unreachable); packets from \
            outside --allow-source are dropped and counted.

            Runs on the gateway nodes with host networking (root, or CAP_NET_ADMIN) and needs \
            IP forwarding on. An invalid exports document is logged and ignored: the last good \
            one stays in force. On SIGTERM the rules stay (established connections survive an \
            upgrade) unless --cleanup-on-exit is given; a restart with unchanged exports sends \
            nothing to the kernel.

            Examples:
              # a gateway node of paris, following the cluster's feed
              mirror-agent gateway --feed https://mirror-feed:8443 --tls-cert gw.crt --tls-key gw.key --ca ca.crt \\
                --state-dir /var/lib/mirror-gateway --allow-source 10.0.0.0/8 --http-listen 127.0.0.1:9154
              # a lab gateway from a file, reachable from one subnet
              mirror-agent gateway --feed file:exports.yaml --allow-source 10.99.0.0/16
              # what it holds: exported ports, endpoints, counters
              mirror-agent dump --gateway
            """
    )

    @Option(help: ArgumentHelp("Where the exports document comes from: https://HOST:PORT (the cluster's mirror feed), http://HOST:PORT (with --insecure), or file:PATH (YAML or JSON, reloaded when it changes).", valueName: "source"))
    var feed: String?

    @OptionGroup(title: "Feed client")
    var feedClient: FeedClientOptions

    @OptionGroup(title: "Gateway")
    var gateway: GatewayOptions

    @OptionGroup(title: "Logging")
    var logging: LoggingOptions

    func validate() throws {
        guard let feed else { throw ValidationError("--feed is required: https://HOST:PORT, http://HOST:PORT or file:PATH") }
        if try feedClient.endpoint(for: feed) == nil { _ = try filePath(feed) }
    }

    private func filePath(_ feed: String) throws -> String {
        guard feed.hasPrefix("file:"), feed.count > 5 else {
            throw ValidationError("--feed \(feed): expected https://HOST:PORT, http://HOST:PORT or file:PATH")
        }
        return String(feed.dropFirst(5))
    }

    func run() async throws {
        let logger = logging.makeLogger(label: "mirror-agent.gateway")
        guard let feed else { throw ValidationError("--feed is required") }
        let allowed = try gateway.allowedSources()
        let range = try gateway.portRange()
        warnIfNotForwarding(logger: logger)

        let backend: KernelRulesetBackend
        do {
            backend = try KernelRulesetBackend()
        } catch {
            printError("mirror-agent gateway: cannot program nftables: \(error) (run as root or with CAP_NET_ADMIN)")
            throw ExitCode(1)
        }
        let rules = GatewayRules(allowedSources: allowed, backend: backend, flows: FlowCleaner(logger: logger))
        let link = FeedLinkRecorder()
        let board = GatewayBoard(source: feed, allowedSources: allowed.map(\.description),
                                 maxStaleness: .seconds(gateway.staleAfter), metrics: GatewayMetrics())
        let rejected: @Sendable (String) -> Void = { reason in Task { await board.recordRejected(reason) } }
        let source: any ExportsSource
        if let network = try feedClient.makeExportsSource(feed: feed, gatewayPorts: range, link: link, onRejected: rejected, logger: logger) {
            source = network
            await board.setFeedLink(link)
            if let tls = network.configuration.tlsMaterial { await board.setTLSMaterial(tls) }
        } else {
            source = FileExportsSource(path: try filePath(feed), gatewayPorts: range, logger: logger, onRejected: rejected)
        }
        await board.setSource(source.description)
        logger.info("gateway starting", metadata: [
            "source": "\(source.description)", "allowed_sources": "\(allowed.map(\.description).joined(separator: ", "))",
            "gateway_ports": "\(range)",
        ])

        var services: [any Service] = []
        do {
            let admin = try await AdminSocket.serve(path: gateway.adminSocket, logger: logger) {
                let counters = GatewayCounters.read(rules.role)
                return try AdminSocket.encoder().encode(await board.status(counters: counters, flows: rules.flows?.statistics))
            }
            services.append(AdminService(channel: admin, path: gateway.adminSocket, identity: AdminSocket.identity(of: gateway.adminSocket)))
        } catch {
            logger.warning("admin socket unavailable; `mirror-agent dump --gateway` will not reach this gateway",
                           metadata: ["socket": "\(gateway.adminSocket)", "error": "\(error)"])
        }
        do {
            let probe = try await TextHTTPServer.serve(on: try gateway.listenAddress(gateway.probeListen, flag: "--probe-listen"),
                                                       name: "gateway probe", logger: logger) { path in
                guard path == "/ready" else { return .notFound("/ready") }
                if let reason = await board.notReadyReason() { return .unavailable(reason + "\n") }
                return .ok("ready\n")
            }
            services.append(ListenerService(channel: probe))
            if let httpListen = gateway.httpListen {
                let http = try await TextHTTPServer.serve(on: try gateway.listenAddress(httpListen, flag: "--http-listen"),
                                                          name: "health and metrics endpoint", logger: logger) { path in
                    switch path {
                    case "/healthz": return .ok("ok\n")
                    case "/readyz", "/ready":
                        if let reason = await board.notReadyReason() { return .unavailable(reason + "\n") }
                        return .ok("ready\n")
                    case "/metrics": return .metrics(await board.prometheusText(counters: GatewayCounters.read(rules.role), flows: rules.flows?.statistics))
                    default: return .notFound("/healthz, /readyz or /metrics")
                    }
                }
                services.append(ListenerService(channel: http))
            }
        } catch {
            printError("mirror-agent gateway: cannot listen: \(error)")
            throw ExitCode(1)
        }
        services.append(ExportsFollower(source: source, rules: rules, board: board,
                                        driftCheckInterval: gateway.driftCheckInterval > 0 ? .seconds(gateway.driftCheckInterval) : nil,
                                        logger: logger))
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) },
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()

        logger.info("shut down", metadata: ["rules": "\(gateway.cleanupOnExit ? "removing" : "left in the kernel")"])
        if gateway.cleanupOnExit {
            do {
                let removed = try await rules.removeTables()
                logger.info("removed nftables tables", metadata: ["batch": "\(removed.summary)"])
            } catch {
                logger.error("could not remove nftables tables", metadata: ["error": "\(error)"])
            }
        }
    }

    /// DNAT to pods on other hosts needs forwarding; Kubernetes nodes have it, a bare host may not.
    private func warnIfNotForwarding(logger: Logger) {
        for (family, path) in [("IPv4", "/proc/sys/net/ipv4/ip_forward"), ("IPv6", "/proc/sys/net/ipv6/conf/all/forwarding")] {
            guard let value = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            if value.trimmingCharacters(in: .whitespacesAndNewlines) == "0" {
                logger.warning("\(family) forwarding is off on this host: gateway traffic to pods elsewhere will be dropped",
                               metadata: ["sysctl": "\(path)"])
            }
        }
    }
}
