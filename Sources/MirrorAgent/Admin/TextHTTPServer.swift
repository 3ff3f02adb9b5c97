import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP/1.1 server for probes and metrics: every GET is answered by `respond` with a
/// status and a text body. Shared by the agent's `/healthz`/`/readyz`/`/metrics` endpoint and
/// the gateway's probe and metrics listeners.
enum TextHTTPServer {
    struct Response: Sendable {
        var status: HTTPResponseStatus
        var body: String
        var contentType = "text/plain"

        static func ok(_ body: String) -> Response { Response(status: .ok, body: body) }
        static func unavailable(_ body: String) -> Response { Response(status: .serviceUnavailable, body: body) }
        static func notFound(_ hint: String) -> Response { Response(status: .notFound, body: "not found; try \(hint)\n") }
        static func metrics(_ body: String) -> Response { Response(status: .ok, body: body, contentType: "text/plain; version=0.0.4") }
    }

    /// Binds `address` and answers each request's path (query string removed) with `respond`.
    static func serve(on address: SocketAddress, name: String, logger: Logger,
                      respond: @escaping @Sendable (String) async -> Response) async throws -> Channel {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Shared during a rolling restart, like the DNS port.
            .serverChannelOption(ChannelOptions.Types.SocketOption(level: .socket, name: NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(TextHTTPHandler(respond: respond))
                }
            }
            .bind(to: address)
            .get()
        logger.info("\(name) listening", metadata: ["address": "\(address)"])
        return channel
    }
}

private final class TextHTTPHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let respond: @Sendable (String) async -> TextHTTPServer.Response

    init(respond: @escaping @Sendable (String) async -> TextHTTPServer.Response) {
        self.respond = respond
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = Self.unwrapInboundIn(data) else { return }
        let channel = context.channel
        let respond = self.respond
        let keepAlive = head.isKeepAlive
        Task {
            let path = head.uri.split(separator: "?").first.map(String.init) ?? ""
            let response = head.method == .GET || head.method == .HEAD
                ? await respond(path) : TextHTTPServer.Response(status: .methodNotAllowed, body: "only GET\n")
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: response.contentType)
            headers.add(name: "Content-Length", value: "\(response.body.utf8.count)")
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            var buffer = channel.allocator.buffer(capacity: response.body.utf8.count)
            buffer.writeString(response.body)
            channel.write(HTTPServerResponsePart.head(HTTPResponseHead(version: head.version, status: response.status, headers: headers)), promise: nil)
            if head.method != .HEAD { channel.write(HTTPServerResponsePart.body(.byteBuffer(buffer)), promise: nil) }
            try? await channel.writeAndFlush(HTTPServerResponsePart.end(nil))
            if !keepAlive { try? await channel.close() }
        }
    }
}
