import Foundation
import NIOCore
import NIOPosix

/// Why `dump` could not get a status from the agent.
enum AdminClientError: Error, CustomStringConvertible {
    case noAgent(path: String, reason: String)
    case badReply(String)

    var description: String {
        switch self {
        case let .noAgent(path, reason):
            "no mirror-agent answers on \(path) (\(reason)). Is `mirror-agent run` running on this node, and are you root? Use --admin-socket if it was started with another path."
        case let .badReply(reason):
            "the agent's reply could not be read: \(reason)"
        }
    }
}

/// Talks to a running agent's admin socket.
enum AdminClient {
    /// Sends `status` and returns the raw JSON reply.
    static func request(path: String, timeout: TimeAmount = .seconds(5)) async throws -> Data {
        guard FileManager.default.fileExists(atPath: path) else {
            throw AdminClientError.noAgent(path: path, reason: "the socket does not exist")
        }
        let collector = ReplyCollector()
        let channel: Channel
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(timeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
                }
                .connect(unixDomainSocketPath: path)
                .get()
        } catch {
            throw AdminClientError.noAgent(path: path, reason: "\(error)")
        }
        var request = channel.allocator.buffer(capacity: 8)
        request.writeString("status\n")
        try await channel.writeAndFlush(request)
        let timer = channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        try await channel.closeFuture.get()
        timer.cancel()
        let reply = collector.reply()
        guard !reply.isEmpty else { throw AdminClientError.badReply("empty reply (timed out?)") }
        return reply
    }

    /// Fetches and decodes the agent's status.
    static func status(path: String) async throws -> (AgentStatus, Data) {
        let data = try await request(path: path)
        return (try decodeStatus(data), data)
    }

    /// Decodes a node agent's status reply.
    static func decodeStatus(_ data: Data) throws -> AgentStatus {
        do {
            return try AdminSocket.decoder().decode(AgentStatus.self, from: data)
        } catch {
            throw AdminClientError.badReply("\(error)")
        }
    }
}

/// Accumulates the reply bytes until the agent closes the connection.
private final class ReplyCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    // Touched only on the channel's event loop, then read after close.
    private var bytes = Data()
    private let lock = NSLock()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = Self.unwrapInboundIn(data)
        if let chunk = buffer.readBytes(length: buffer.readableBytes) {
            lock.withLock { bytes.append(contentsOf: chunk) }
        }
    }

    func reply() -> Data { lock.withLock { bytes } }
}
