import ArgumentParser
import CHeapArenas
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import MirrorModel
import MirrorFeed
import NFTables

/// `mirror-agent run`: the node agent (DNS + nftables, driven by the feed).
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the node agent: answer DNS for mirrored names and program nftables.",
        discussion: """
            Follows the mirror state given by --feed and keeps the DNS responder and the \
            kernel's nftables in step with it. Invalid state is logged and ignored: the last \
            good state stays in force. `mirror-agent dump` shows what the agent holds.

            On a node (root): creates --dns-interface with the --dns-address addresses, answers \
            DNS there, programs the ip/ip6 mirror-agent tables, and checks them for drift. On \
            SIGTERM the rules stay in the kernel (traffic keeps flowing across an upgrade) \
            unless --cleanup-on-exit is given.

            Examples:
              # a node, following the cluster's feed
              mirror-agent run --feed https://mirror-feed:8443 --tls-cert agent.crt --tls-key agent.key --ca ca.crt \\
                --dns-address 169.254.20.11 --dns-listen 169.254.20.11:53 --upstream 10.96.0.10:53
              # DNS only from a state file, no root needed
              mirror-agent run --feed file:examples/two-clusters.yaml --no-nftables \\
                --dns-listen 127.0.0.1:5353 --upstream 127.0.0.1:53
            """
    )

    @Option(help: ArgumentHelp("Where the mirror state comes from: https://HOST:PORT (a mirror feed), http://HOST:PORT (with --insecure), or file:PATH (a state file, reloaded when it changes).", valueName: "source"))
    var feed: String?

    @OptionGroup(title: "Feed client")
    var feedClient: FeedClientOptions

    @OptionGroup(title: "DNS")
    var dns: DNSOptions

    @OptionGroup(title: "nftables")
    var rules: RulesOptions

    @OptionGroup(title: "Node")
    var node: NodeOptions

    @OptionGroup(title: "Logging")
    var logging: LoggingOptions

    func validate() throws {
        if rules.cleanup { return }
        if !dns.interceptClusterDNS.isEmpty, rules.noNftables || dns.disabled {
            throw ValidationError("--intercept-cluster-dns needs nftables and DNS (it cannot be combined with --no-nftables or --no-dns)")
        }
        if !rules.isOneShot { try dns.requireUpstream() }
        guard let feed else { throw ValidationError("--feed is required: https://HOST:PORT, http://HOST:PORT or file:PATH") }
        if try feedClient.endpoint(for: feed) == nil { _ = try sourceLocation() }
    }

    private func sourceLocation() throws -> String {
        guard let feed, feed.hasPrefix("file:"), feed.count > 5 else {
            throw ValidationError("--feed \(feed ?? "(missing)"): expected https://HOST:PORT, http://HOST:PORT or file:PATH")
        }
        return String(feed.dropFirst(5))
    }

    func run() async throws {
        let logger = logging.makeLogger(label: "mirror-agent.run")
        let arenas = mirror_agent_heap_arena_cap()
        logger.debug("heap arenas", metadata: ["cap": "\(arenas == 0 ? "MALLOC_ARENA_MAX or glibc default" : "\(arenas)")"])
        let intercepted = try dns.interceptedAddresses()
        if try await rules.runOneShot(statePath: try? sourceLocation(), interceptedDNS: intercepted, logger: logger) { return }
        guard let feed else { throw ValidationError("--feed is required") }

        // On a node with no DNS flags: NodeLocal DNSCache's link-local address on the interface.
        let dnsAddresses = rules.dnsAddresses.isEmpty && dns.listen.isEmpty && !rules.noNftables && !dns.disabled
            ? [DNSOptions.linkLocalAddress] : rules.dnsAddresses
        if !rules.noNftables {
            do {
                try NodeAgent.setUpDNSInterface(node.dnsInterface, addresses: dnsAddresses + intercepted.map { "\($0)" }, logger: logger)
            } catch {
                printError("mirror-agent run: cannot set up DNS interface \(node.dnsInterface): \(error)")
                throw ExitCode(1)
            }
        }
        let rulesComponent = try rules.makeConsumer(dnsAddresses: dnsAddresses.compactMap(IPAddress.init), interceptedDNS: intercepted,
                                                    logger: logger)
        let board = StatusBoard(source: "", parts: [:], metrics: AgentMetrics(serviceSeriesLimit: node.metricsServiceLimit))
        let upstreams = dns.upstream.joined(separator: ", ")
        let dnsPart = dns.disabled ? nil : DeferredDNS(
            options: dns, addresses: try dns.listenAddresses(dnsAddresses: dnsAddresses, nftables: !rules.noNftables),
            intercepted: try dns.interceptedListenAddresses(), logger: logger
        ) { component in
            await board.recordDetail(part: "dns", "listen", await component.localAddresses.map { "\($0)" }.joined(separator: ", "))
            await board.recordDetail(part: "dns", "upstreams", upstreams)
        }
        if !intercepted.isEmpty {
            await board.recordDetail(part: "dns", "mode", "transparent: answers \(intercepted.map { "\($0)" }.joined(separator: ", ")) while running; fail-open: the NOTRACK in raw-prerouting applies only while its socket exists, so the cluster DNS answers when the agent is gone")
        }
        // nftables first: a name is answered only once its ClusterIP is routed.
        var parts: [NodeAgent.Part] = []
        if let rulesComponent { parts.append(.init(name: "nftables", consumer: rulesComponent)) }
        if let dnsPart { parts.append(.init(name: "dns", consumer: dnsPart)) }
        let link = FeedLinkRecorder()
        let network = try feedClient.makeSource(feed: feed, link: link, logger: logger)
        if network != nil { await board.setFeedLink(link) }
        if let tls = network?.configuration.tlsMaterial { await board.setTLSMaterial(tls) }
        let source: any MirrorSource
        if let network { source = network } else { source = FileMirrorSource(path: try sourceLocation(), logger: logger) }
        await board.configure(source: source.description, parts: ["nftables": rulesComponent != nil, "dns": dnsPart != nil])
        if let dnsPart { await board.setDNSStatisticsSource { await dnsPart.statistics() } }
        if let rulesComponent { await board.setFlowStatisticsSource { await rulesComponent.flowStatistics() } }
        let agent = NodeAgent(board: board, parts: parts, logger: logger)
        // With nothing to answer from after a moment, answer by forwarding (never leave pods
        // pointed at this agent without DNS).
        if let dnsPart { Task { await dnsPart.forwardIfNoState(after: .seconds(2)) } }

        let admin: Channel?
        do {
            admin = try await AdminSocket.serve(path: node.adminSocket, board: agent.board, logger: logger)
        } catch {
            // DNS and rules still work; only `dump` is blind.
            logger.warning("admin socket unavailable; `mirror-agent dump` will not reach this agent",
                           metadata: ["socket": "\(node.adminSocket)", "error": "\(error)"])
            admin = nil
        }
        var health: Channel? = nil
        if let httpListen = node.httpListen {
            do {
                health = try await HealthEndpoint.serve(on: try node.httpAddress(httpListen), board: board, logger: logger)
            } catch {
                printError("mirror-agent run: cannot serve --http-listen \(httpListen): \(error)")
                throw ExitCode(1)
            }
        }
        // Shut down in reverse order: DNS first, then the feed, then the endpoints.
        var services: [any Service] = []
        if let admin {
            services.append(AdminService(channel: admin, path: node.adminSocket, identity: AdminSocket.identity(of: node.adminSocket)))
        }
        if let health { services.append(ListenerService(channel: health)) }
        services.append(MirrorFollower(source: source, agent: agent, rules: rulesComponent,
                                       driftCheckInterval: node.driftCheckInterval > 0 ? .seconds(node.driftCheckInterval) : nil,
                                       logger: logger))
        if let dnsPart { services.append(DNSDrain(dns: dnsPart, drain: .milliseconds(300))) }
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) },
                                                      gracefulShutdownSignals: [.sigterm, .sigint],
                                                      logger: logger))
        try await group.run()

        logger.info("shut down", metadata: ["rules": "\(node.cleanupOnExit ? "removing" : "left in the kernel")"])
        if node.cleanupOnExit {
            if let rulesComponent {
                do {
                    let removed = try await rulesComponent.removeTables()
                    logger.info("removed nftables tables", metadata: ["batch": "\(removed.summary)"])
                } catch {
                    logger.error("could not remove nftables tables", metadata: ["error": "\(error)"])
                }
            }
            NodeAgent.tearDownDNSInterface(node.dnsInterface, addresses: dnsAddresses + intercepted.map { "\($0)" }, logger: logger)
        }
    }
}
