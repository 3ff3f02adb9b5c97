import DNSResponder
import Logging
import NIOCore
import NIOPosix
import Sync

/// The DNS responder as a part of the agent: starts the servers, then turns every mirror
/// update into a new record table and swaps it in. A state that cannot be translated is
/// reported and the previous table keeps answering.
final class DNSComponent: MirrorConsumer {
    private let server: DNSServer
    private let ttl: UInt32
    private let logger: Logger

    private init(server: DNSServer, ttl: UInt32, logger: Logger) {
        self.server = server
        self.ttl = ttl
        self.logger = logger
    }

    /// Binds the DNS listeners described by `options`; nil when DNS is disabled.
    static func start(options: DNSOptions, logger: Logger) async throws -> DNSComponent? {
        guard !options.disabled else { return nil }
        let configuration = DNSServerConfiguration(listen: try options.listenAddresses(), access: try options.accessList(),
                                                   forwarding: DNSForwardingConfiguration(upstreams: try options.upstreamAddresses()))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: options.threadCount)
        let server = try await DNSServer.start(configuration: configuration, table: nil, group: group, logger: logger)
        return DNSComponent(server: server, ttl: options.ttl, logger: logger)
    }

    /// The bound addresses (ports resolved).
    var localAddresses: [SocketAddress] { server.localAddresses }

    func apply(_ update: MirrorUpdate) async throws {
        let clock = ContinuousClock()
        let started = clock.now
        let content = try DNSRecordTranslator.content(for: update.store, ttl: ttl)
        let table = try DNSRecordTable(content)
        server.replaceTable(table)
        logger.info("DNS records updated", metadata: ["revision": "\(update.store.revision)", "names": "\(table.nameCount)",
                                                      "build": "\(clock.now - started)"])
    }
}
