import Foundation
import Logging
import NIOCore
import NIOPosix

/// The agent's admin socket: a Unix stream socket (mode 0600, root only) where `dump` asks
/// for the agent's status. One request line (`status`), one JSON reply, then close — simple
/// enough to use with `socat - UNIX-CONNECT:/run/mirror-agent/admin.sock`.
enum AdminSocket {
    static let defaultPath = "/run/mirror-agent/admin.sock"
    /// The gateway's: a node may run both an agent and a gateway.
    static let gatewayPath = "/run/mirror-agent/gateway.sock"
    /// The feed's (`mirror-agent feed`).
    static let feedPath = "/run/mirror-agent/feed.sock"

    /// JSON with ISO 8601 dates, shared by server and client.
    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }

    /// Identifies the socket file this process bound, so that on exit it removes only its own
    /// socket and not the one a newer agent (rolling restart) has taken over. The inode alone
    /// is not enough: ext4 hands a just-freed inode number to the next file created.
    struct FileIdentity: Equatable, Sendable {
        var device: UInt64
        var inode: UInt64
        var changedSeconds: Int
        var changedNanoseconds: Int
    }

    static func identity(of path: String) -> FileIdentity? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino),
                            changedSeconds: info.st_ctim.tv_sec, changedNanoseconds: info.st_ctim.tv_nsec)
    }

    /// Removes the socket file if it is still the one this process bound.
    static func removeIfOwned(path: String, identity: FileIdentity?) {
        guard let identity, Self.identity(of: path) == identity else { return }
        unlink(path)
    }

    /// Binds `path` (replacing a stale socket left by a killed agent) and serves `board`.
    ///
    /// When a newer agent later takes the path over — a rolling update that starts the new
    /// agent beside this one (DaemonSet `maxSurge`) — this agent hands its HTTP port (probes,
    /// metrics; shared through SO_REUSEPORT) over to the newer one, so that the kubelet's
    /// probes of the new pod are answered by the new agent, not by this one. DNS, rules and
    /// state stay as they are until SIGTERM. Should the newer agent go away first (a rollback
    /// deletes the new pod, a crash), this one takes the HTTP port and the socket back.
    static func serve(path: String, board: StatusBoard, logger: Logger) async throws -> Channel {
        let status: @Sendable () async throws -> Data = {
            let counters = await board.programsNFTables ? AgentStatus.kernelCounters() : [:]
            return try AdminSocket.encoder().encode(await board.snapshot(counters: counters))
        }
        let channel = try await serve(path: path, logger: logger, status: status)
        Task { await followHandOvers(path: path, channel: channel, logger: logger, status: status) }
        return channel
    }

    /// The hand-over loop of ``serve(path:board:logger:)``: wait for a takeover, hand the HTTP
    /// ports over, wait for the newer agent to stop listening, take everything back, repeat.
    private static func followHandOvers(path: String, channel: Channel, logger: Logger,
                                        status: @escaping @Sendable () async throws -> Data) async {
        var channel = channel
        while let identity = identity(of: path) {
            guard await takenOver(path: path, identity: identity, while: channel) else { return }
            logger.notice("a newer agent took the admin socket over; handing the HTTP port over to it",
                          metadata: ["socket": "\(path)"])
            let handed = await TextHTTPServer.handOverListeners(logger: logger)
            guard !handed.isEmpty else { return }
            await TextHTTPServer.reclaim(handed, logger: logger)
            // The newer agent no longer listens: it is gone (or going), so its socket is too.
            do {
                channel = try await serve(path: path, logger: logger, status: status)
            } catch {
                logger.warning("cannot take the admin socket back; `mirror-agent dump` will not reach this agent",
                               metadata: ["socket": "\(path)", "error": "\(error)"])
                return
            }
        }
    }

    /// Waits until another socket file replaces the one this process bound at `path` (true),
    /// or `channel` closes (false). A missing file is not a takeover (an operator removed it,
    /// or the newer agent is about to bind): the wait goes on.
    static func takenOver(path: String, identity: FileIdentity, while channel: Channel,
                          poll: Duration = .milliseconds(200)) async -> Bool {
        while channel.isActive {
            if let current = Self.identity(of: path), current != identity, isSocket(path) { return true }
            do { try await Task.sleep(for: poll) } catch { return false }
        }
        return false
    }

    static func isSocket(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK
    }

    /// Binds `path` and answers every `status` request with the JSON `status` makes.
    static func serve(path: String, logger: Logger, status: @escaping @Sendable () async throws -> Data) async throws -> Channel {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if FileManager.default.fileExists(atPath: path) {
            // A live agent still answering here: expected during a rolling update that starts
            // the new agent first (DaemonSet maxSurge) — the old one sees the takeover, hands
            // its HTTP port over and gets SIGTERM once the new pod is ready. Outside a rollout
            // it means two agents on one node.
            if (try? await AdminClient.request(path: path, timeout: .milliseconds(500))) != nil {
                logger.notice("another agent answers on the admin socket (a rolling update starts the new agent beside the old one); taking it over",
                              metadata: ["socket": "\(path)"])
            }
            try? FileManager.default.removeItem(atPath: path)
        }
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineDecoder()))
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(status: status))
                }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true)
            .get()
        chmod(path, 0o600)
        logger.info("admin socket listening", metadata: ["socket": "\(path)"])
        return channel
    }
}

/// Splits the request stream into lines (at most 1 KiB; a request is one word).
struct LineDecoder: ByteToMessageDecoder {
    typealias InboundOut = String

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > 1024 { throw AdminProtocolError.requestTooLong }
            return .needMoreData
        }
        let length = newline - buffer.readerIndex
        let line = buffer.readString(length: length) ?? ""
        buffer.moveReaderIndex(forwardBy: 1)
        context.fireChannelRead(Self.wrapInboundOut(line.trimmingCharacters(in: .whitespaces)))
        return .continue
    }
}

enum AdminProtocolError: Error, CustomStringConvertible {
    case requestTooLong
    var description: String { "admin request longer than 1 KiB" }
}

/// Answers one request per connection.
final class AdminHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = String
    typealias OutboundOut = ByteBuffer

    private let status: @Sendable () async throws -> Data

    init(status: @escaping @Sendable () async throws -> Data) {
        self.status = status
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let request = Self.unwrapInboundIn(data)
        let channel = context.channel
        let status = self.status
        Task {
            let reply: Data
            switch request {
            case "status":
                reply = (try? await status()) ?? Data("{\"error\":\"encoding failed\"}".utf8)
            default:
                reply = Data("{\"error\":\"unknown request \\\"\(request.prefix(40))\\\"; expected status\"}".utf8)
            }
            var buffer = channel.allocator.buffer(capacity: reply.count + 1)
            buffer.writeBytes(reply)
            buffer.writeInteger(UInt8(ascii: "\n"))
            try? await channel.writeAndFlush(buffer)
            try? await channel.close()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
