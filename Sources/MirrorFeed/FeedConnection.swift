import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import MirrorModel

/// One watch connection of a ``FeedClient``: connect, ask for the stream from the applier's
/// revision, and apply events until the stream fails.
struct FeedConnection {
    let configuration: FeedClient.Configuration
    let tls: NIOSSLContext?
    let group: any EventLoopGroup

    /// Streams events into `applier`, reporting each batch of applied events (those decoded
    /// from one network read) as one update. Returns or throws when the stream ends.
    func stream(into applier: inout FeedApplier, persistence: FeedPersistence,
                onUpdate: @escaping @Sendable (MirrorUpdate) async -> Void) async throws {
        let endpoint = configuration.endpoint
        let channel = try await connect()
        applier.beginStream()
        let request = FeedWatchRequest(since: applier.since, epoch: applier.since == nil ? nil : applier.epoch)
        try await channel.executeThenClose { inbound, outbound in
            var headers = HTTPHeaders()
            headers.add(name: "host", value: endpoint.authority)
            headers.add(name: "accept", value: FeedWatchRequest.contentType)
            headers.add(name: "user-agent", value: "mirror-agent")
            try await Self.send(HTTPRequestHead(version: .http1_1, method: .GET, uri: request.target, headers: headers),
                                outbound: outbound, inbound: inbound)

            var splitter = FeedLineSplitter(limit: configuration.lineLimit)
            for try await part in inbound {
                switch part {
                case .head(let head):
                    guard head.status == .ok else { throw FeedClientError.httpStatus(Int(head.status.code), head.status.reasonPhrase) }
                    configuration.onLinkChange?(.established)
                case .body(let bytes):
                    splitter.append(bytes)
                    var changes = ChangeSet()
                    var applied = false
                    var snapshot = false
                    do {
                        while let line = try splitter.nextLine() {
                            let event = try FeedEvent.decode(line: line)
                            if let change = try applier.apply(event) {
                                changes.merge(change)
                                applied = true
                                if case .snapshot = event { snapshot = true }
                            }
                        }
                    } catch {
                        // Events before the bad one are whole and valid: hand them on, then drop.
                        if applied { await onUpdate(MirrorUpdate(store: applier.store, changes: changes, rebuilt: snapshot)) }
                        throw error
                    }
                    if applied { await onUpdate(MirrorUpdate(store: applier.store, changes: changes, rebuilt: snapshot)) }
                    persistence.persistIfDue(applier)
                case .end:
                    throw FeedClientError.streamEnded
                }
            }
        }
    }

    /// Writes the request. When the write fails because the connection is already gone (a
    /// failed TLS handshake closes it), the reason is the inbound side's error, not "I/O on
    /// closed channel": that is what an operator must see.
    static func send(_ head: HTTPRequestHead, outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>,
                     inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>) async throws {
        do {
            try await outbound.write(.head(head))
            try await outbound.write(.end(nil))
        } catch {
            for try await _ in inbound {}
            throw error
        }
    }

    /// Dials the feed (TLS when configured) with the silence timeout armed.
    func connect() async throws -> NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart> {
        let endpoint = configuration.endpoint
        let silence = configuration.silenceTimeout
        let tls = self.tls
        let serverName = endpoint.hostIsIPAddress ? nil : endpoint.host
        do {
            return try await ClientBootstrap(group: group)
                .connectTimeout(configuration.connectTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connect(host: endpoint.host, port: endpoint.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        if let tls { try sync.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName)) }
                        try sync.addHTTPClientHandlers()
                        try sync.addHandler(IdleStateHandler(readTimeout: silence))
                        try sync.addHandler(FeedSilenceHandler(timeout: silence))
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw FeedClientError.connect(address: endpoint.description, reason: "\(error)")
        }
    }
}

/// Turns "nothing read for the silence timeout" into an error that ends the stream.
final class FeedSilenceHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias InboundOut = HTTPClientResponsePart

    private let timeout: TimeAmount

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            context.fireErrorCaught(FeedClientError.silent(after: timeout))
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
