import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A stand-in for `mirror-agent gateway`'s `/ready` listener on loopback addresses: answers
/// every GET with the status the test sets (200 or 503), or is closed to refuse connections.
final class ProbeTarget: Sendable {
    let port: Int
    private let status: NIOLockedValueBox<HTTPResponseStatus>
    private let channels: [Channel]
    private let hits = NIOLockedValueBox<[String: Int]>([:])

    private init(port: Int, status: NIOLockedValueBox<HTTPResponseStatus>, channels: [Channel]) {
        self.port = port
        self.status = status
        self.channels = channels
    }

    /// Listens on each of `hosts` on one port (free, chosen on the first host).
    static func start(hosts: [String] = ["127.0.0.1"]) async throws -> ProbeTarget {
        let status = NIOLockedValueBox(HTTPResponseStatus.ok)
        let hits = NIOLockedValueBox<[String: Int]>([:])
        var channels: [Channel] = []
        var port = 0
        for host in hosts {
            let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.pipeline.configureHTTPServerPipeline().flatMap {
                        channel.pipeline.addHandler(Responder(status: status, hits: hits, host: host))
                    }
                }
                .bind(host: host, port: port).get()
            port = channel.localAddress?.port ?? 0
            channels.append(channel)
        }
        let target = ProbeTarget(port: port, status: status, channels: channels)
        return target
    }

    func answer(_ status: HTTPResponseStatus) { self.status.withLockedValue { $0 = status } }

    func stop() async {
        for channel in channels { try? await channel.close() }
    }

    private final class Responder: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let status: NIOLockedValueBox<HTTPResponseStatus>
        let hits: NIOLockedValueBox<[String: Int]>
        let host: String

        init(status: NIOLockedValueBox<HTTPResponseStatus>, hits: NIOLockedValueBox<[String: Int]>, host: String) {
            self.status = status
            self.hits = hits
            self.host = host
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .end = unwrapInboundIn(data) else { return }
            hits.withLockedValue { $0[host, default: 0] += 1 }
            let status = status.withLockedValue { $0 }
            var headers = HTTPHeaders()
            headers.add(name: "content-length", value: "0")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
