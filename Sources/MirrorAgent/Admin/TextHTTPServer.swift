import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

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
        let key = ObjectIdentifier(channel)
        // The bound address (port 0 is given one by the kernel).
        let bound = channel.localAddress ?? address
        listeners.withLock { $0[key] = Listener(channel: channel, port: SharedPort(address: bound, name: name, respond: respond)) }
        channel.closeFuture.whenComplete { _ in _ = listeners.withLock { $0.removeValue(forKey: key) } }
        return channel
    }

    /// What a listener serves, to listen again after a hand-over.
    struct SharedPort: Sendable {
        var address: SocketAddress
        var name: String
        var respond: @Sendable (String) async -> Response
    }

    /// A listener this process opened and has not closed yet.
    private struct Listener: Sendable {
        var channel: Channel
        var port: SharedPort
    }

    private static let listeners = Mutex<[ObjectIdentifier: Listener]>([:])

    /// Hands this process's ports to a newer process that shares them (SO_REUSEPORT, a rolling
    /// update that starts the new agent before stopping the old one): each listener is closed
    /// as soon as another process listens on its address, so from then on every connection —
    /// a kubelet probe, a Prometheus scrape — reaches the newer process, and a readiness probe
    /// reports the newer agent's state rather than this one's. A port nobody else listens on
    /// within `patience` stays open (the newer process failed to start): it is never left
    /// without a listener by this.
    ///
    /// - Returns: the ports handed over, for ``reclaim(_:poll:logger:)``.
    static func handOverListeners(patience: Duration = .seconds(30), poll: Duration = .milliseconds(100),
                                  logger: Logger) async -> [SharedPort] {
        let open = listeners.withLock { Array($0.values) }
        return await withTaskGroup(of: SharedPort?.self) { group in
            for listener in open {
                group.addTask {
                    let port = listener.port
                    let deadline = ContinuousClock.now + patience
                    while listener.channel.isActive {
                        if ListeningSockets.othersListen(on: port.address) {
                            try? await listener.channel.close()
                            logger.info("\(port.name): another process listens on the same address; handed the port over to it",
                                        metadata: ["address": "\(port.address)"])
                            return port
                        }
                        guard ContinuousClock.now < deadline else {
                            logger.warning("\(port.name): no other process took the shared port over; keeping it",
                                           metadata: ["address": "\(port.address)"])
                            return nil
                        }
                        try? await Task.sleep(for: poll)
                    }
                    return nil
                }
            }
            var handed: [SharedPort] = []
            for await port in group { if let port { handed.append(port) } }
            return handed
        }
    }

    /// Listens again on ports handed over once no other process listens there any more: the
    /// newer process went away while this one still runs (its pod deleted by a rollback, a
    /// crash), so probes and scrapes reach this process again instead of nothing. Returns
    /// the new listeners when every port is served again (or the task is cancelled).
    @discardableResult
    static func reclaim(_ ports: [SharedPort], poll: Duration = .seconds(1), logger: Logger) async -> [Channel] {
        await withTaskGroup(of: Channel?.self) { group in
            for port in ports {
                group.addTask {
                    while !Task.isCancelled {
                        do { try await Task.sleep(for: poll) } catch { return nil }
                        guard !ListeningSockets.othersListen(on: port.address) else { continue }
                        do {
                            let channel = try await serve(on: port.address, name: port.name, logger: logger, respond: port.respond)
                            logger.notice("\(port.name): the process it was handed to no longer listens; took the port back",
                                          metadata: ["address": "\(port.address)"])
                            return channel
                        } catch {
                            logger.warning("\(port.name): cannot listen again", metadata: ["address": "\(port.address)", "error": "\(error)"])
                        }
                    }
                    return nil
                }
            }
            var channels: [Channel] = []
            for await channel in group { if let channel { channels.append(channel) } }
            return channels
        }
    }
}

/// The TCP listening sockets of this network namespace, from /proc/net/tcp and /proc/net/tcp6.
enum ListeningSockets {
    /// Whether a socket this process does not hold listens on exactly `address`.
    static func othersListen(on address: SocketAddress) -> Bool {
        !inodes(listeningOn: address).subtracting(ownSocketInodes()).isEmpty
    }

    /// The socket inodes of the TCP listeners on `address` (exactly: 0.0.0.0:9153 is not
    /// 10.0.0.5:9153).
    static func inodes(listeningOn address: SocketAddress) -> Set<UInt64> {
        guard let local = procLocalAddress(address) else { return [] }
        let table = address.protocol == .inet6 ? "/proc/net/tcp6" : "/proc/net/tcp"
        guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { return [] }
        return listeners(in: text, local: local)
    }

    /// Parses a /proc/net/tcp{,6} table: the inodes of the LISTEN (state 0A) rows whose local
    /// address column is `local`.
    static func listeners(in table: String, local: String) -> Set<UInt64> {
        var found: Set<UInt64> = []
        for line in table.split(separator: "\n").dropFirst() {
            // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 9, fields[3] == "0A", fields[1] == local, let inode = UInt64(fields[9]) else { continue }
            found.insert(inode)
        }
        return found
    }

    /// `address` as the kernel prints it in /proc/net/tcp: each 32-bit word of the address
    /// as the machine reads it from memory, then the port, in upper-case hex.
    static func procLocalAddress(_ address: SocketAddress) -> String? {
        guard let port = address.port else { return nil }
        let words: [UInt32]
        switch address {
        case .v4(let v4):
            words = [v4.address.sin_addr.s_addr]
        case .v6(let v6):
            words = withUnsafeBytes(of: v6.address.sin6_addr) { bytes in
                (0..<4).map { bytes.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self) }
            }
        default:
            return nil
        }
        return words.map { String(format: "%08X", $0) }.joined() + String(format: ":%04X", port)
    }

    /// The inodes of the sockets this process holds (/proc/self/fd links `socket:[INODE]`).
    static func ownSocketInodes() -> Set<UInt64> {
        guard let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return [] }
        var inodes: Set<UInt64> = []
        for descriptor in descriptors {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + descriptor),
                  target.hasPrefix("socket:["), target.hasSuffix("]"),
                  let inode = UInt64(target.dropFirst(8).dropLast()) else { continue }
            inodes.insert(inode)
        }
        return inodes
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
