import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import MirrorModel

/// The feed's HTTP(S) listener: accepts watchers and probes, sends bookmarks, and shuts
/// down by closing the listener and then every stream.
///
/// State comes from the ``FeedHub``; ``FeedPublisher`` feeds the hub from a source.
public final class FeedServer: Sendable {
    public let hub: FeedHub
    /// The gateways' stream (`/v1/exports`), when the feed serves exports.
    public let exportsHub: FeedHub?
    private let group: any EventLoopGroup
    /// The context for each new connection (nil: plain HTTP).
    private let tls: (@Sendable () -> NIOSSLContext)?
    private let logger: Logger
    private let channel: any Channel
    private let bookmarks: [RepeatedTask]

    /// The bound address (with the real port when 0 was asked).
    public var localAddress: SocketAddress? { channel.localAddress }

    /// Binds `host:port` and starts serving with one fixed TLS context.
    ///
    /// - Parameters:
    ///   - tls: the server TLS context (``FeedTLSFiles/makeServerContext()``); nil serves plain
    ///     HTTP, which the command allows only with `--insecure`.
    /// - Throws: when the address cannot be bound.
    public convenience init(hub: FeedHub, exportsHub: FeedHub? = nil, host: String, port: Int, tls: NIOSSLContext?,
                            group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) async throws {
        var provider: (@Sendable () -> NIOSSLContext)?
        if let tls { provider = { tls } }
        try await self.init(hub: hub, exportsHub: exportsHub, host: host, port: port, tlsContext: provider, group: group, logger: logger)
    }

    /// Binds `host:port` and starts serving; every new connection's handshake uses the newest
    /// material `tlsMaterial` loaded (a rotation never cuts established streams).
    public convenience init(hub: FeedHub, exportsHub: FeedHub? = nil, host: String, port: Int, tlsMaterial tls: TLSReloader?,
                            group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) async throws {
        var provider: (@Sendable () -> NIOSSLContext)?
        if let tls { provider = { tls.context } }
        try await self.init(hub: hub, exportsHub: exportsHub, host: host, port: port, tlsContext: provider, group: group, logger: logger)
    }

    private init(hub: FeedHub, exportsHub: FeedHub?, host: String, port: Int, tlsContext tls: (@Sendable () -> NIOSSLContext)?,
                 group: any EventLoopGroup, logger: Logger) async throws {
        self.hub = hub
        self.exportsHub = exportsHub
        self.group = group
        self.tls = tls
        self.logger = logger
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 4)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls { try sync.addHandler(NIOSSLServerHandler(context: tls())) }
                    try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
                    try sync.addHandler(FeedHTTPHandler(hub: hub, exportsHub: exportsHub, logger: logger))
                }
            }
        do {
            channel = try await bootstrap.bind(host: host, port: port).get()
        } catch {
            throw FeedServerError.bind(address: "\(host):\(port)", reason: "\(error)")
        }
        let interval = hub.configuration.bookmarkInterval
        bookmarks = ([hub] + (exportsHub.map { [$0] } ?? [])).map { served in
            group.next().scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in served.publishBookmark() }
        }
        logger.info("feed listening", metadata: [
            "address": "\(channel.localAddress?.description ?? "\(host):\(port)")", "tls": "\(tls != nil)", "epoch": "\(hub.epoch)",
        ])
    }

    /// Stops accepting, closes every watch stream, and waits for the listener to close.
    /// Clients reconnect (to this address, once a new server listens) and resume.
    public func shutdown() async {
        for task in bookmarks { task.cancel() }
        try? await channel.close()
        await hub.close()
        await exportsHub?.close()
        logger.info("feed stopped", metadata: ["watchers": "\(hub.metrics.watchers)"])
    }
}

/// The feed server could not start.
public enum FeedServerError: Error, CustomStringConvertible {
    case bind(address: String, reason: String)

    public var description: String {
        switch self {
        case let .bind(address, reason): "cannot listen on \(address): \(reason); is another process using the port?"
        }
    }
}
