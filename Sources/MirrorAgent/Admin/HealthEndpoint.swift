import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The agent's HTTP endpoint for the kubelet and Prometheus: `/healthz` (the process
/// serves), `/readyz` (a mirror state has been applied; 503 before), `/metrics`.
enum HealthEndpoint {
    static func serve(on address: SocketAddress, board: StatusBoard, logger: Logger) async throws -> Channel {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Shared during a rolling restart, like the DNS port.
            .serverChannelOption(ChannelOptions.Types.SocketOption(level: .socket, name: NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(HealthHandler(board: board))
                }
            }
            .bind(to: address)
            .get()
        logger.info("health and metrics endpoint listening", metadata: ["address": "\(address)"])
        return channel
    }
}

private final class HealthHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let board: StatusBoard

    init(board: StatusBoard) {
        self.board = board
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = Self.unwrapInboundIn(data) else { return }
        let channel = context.channel
        let board = self.board
        let keepAlive = head.isKeepAlive
        Task {
            let (status, body): (HTTPResponseStatus, String)
            switch head.uri.split(separator: "?").first.map(String.init) ?? "" {
            case "/healthz":
                (status, body) = (.ok, "ok\n")
            case "/readyz":
                (status, body) = await board.ready ? (.ok, "ready\n") : (.serviceUnavailable, "no mirror state applied yet\n")
            case "/metrics":
                let counters = await board.wantsServiceSeries ? AgentStatus.kernelCounters() : [:]
                (status, body) = (.ok, await board.prometheusText(counters: counters))
            default:
                (status, body) = (.notFound, "not found; try /healthz, /readyz or /metrics\n")
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: head.uri.hasPrefix("/metrics") ? "text/plain; version=0.0.4" : "text/plain")
            headers.add(name: "Content-Length", value: "\(body.utf8.count)")
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            var buffer = channel.allocator.buffer(capacity: body.utf8.count)
            buffer.writeString(body)
            channel.write(HTTPServerResponsePart.head(HTTPResponseHead(version: head.version, status: status, headers: headers)), promise: nil)
            channel.write(HTTPServerResponsePart.body(.byteBuffer(buffer)), promise: nil)
            try? await channel.writeAndFlush(HTTPServerResponsePart.end(nil))
            if !keepAlive { try? await channel.close() }
        }
    }
}
