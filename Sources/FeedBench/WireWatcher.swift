import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import MirrorModel
import MirrorFeed

/// A minimal watcher for the fan-out-only mode: reads the stream and notes each event's
/// revision from the line's fixed prefix (`{"type":"…","revision":N`), without decoding or
/// applying anything. It measures the server's fan-out apart from client CPU, which in the
/// full mode all 2,000 clients spend on the bench's own 2 cores.
final class WireWatcher: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let index: Int
    private let tally: WatcherTally
    private var splitter = FeedLineSplitter(limit: 64 << 20)

    init(index: Int, tally: WatcherTally) {
        self.index = index
        self.tally = tally
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .body(let bytes) = unwrapInboundIn(data) else { return }
        splitter.append(bytes)
        var latest: UInt64?
        while let line = try? splitter.nextLine() {
            if let revision = Self.revision(of: line) { latest = revision }
        }
        if let latest { tally.record(watcher: index, revision: latest) }
    }

    /// The number after the first `"revision":`.
    static func revision(of line: ByteBuffer) -> UInt64? {
        let view = line.readableBytesView
        let key = Array("\"revision\":".utf8)
        guard let start = view.firstRange(of: key)?.upperBound else { return nil }
        var value: UInt64 = 0
        var index = start
        while index < view.endIndex, view[index] >= 48, view[index] <= 57 {
            value = value * 10 + UInt64(view[index] - 48)
            index += 1
        }
        return index == start ? nil : value
    }

    /// Opens one watch connection (over TLS when `tls` is given, as the agent's client does).
    static func connect(endpoint: FeedEndpoint, tls: NIOSSLContext?, index: Int, tally: WatcherTally,
                        group: any EventLoopGroup) async throws -> any Channel {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls { try sync.addHandler(NIOSSLClientHandler(context: tls, serverHostname: endpoint.hostIsIPAddress ? nil : endpoint.host)) }
                    try sync.addHTTPClientHandlers()
                    try sync.addHandler(WireWatcher(index: index, tally: tally))
                }
            }
            .connect(host: endpoint.host, port: endpoint.port).get()
        var headers = HTTPHeaders()
        headers.add(name: "host", value: endpoint.authority)
        channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: FeedWatchRequest.path, headers: headers)), promise: nil)
        try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
        return channel
    }
}
