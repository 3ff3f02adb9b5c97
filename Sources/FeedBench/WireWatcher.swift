import NIOCore
import NIOHTTP1
import NIOPosix
import Sync

/// A minimal watcher for the fan-out-only mode: reads the stream and notes each event's
/// revision from the line's fixed prefix (`{"type":"…","revision":N`), without decoding or
/// applying anything. It measures the server's fan-out apart from client CPU, which in the
/// full mode all 2,000 clients spend on the bench's own 2 cores.
final class WireWatcher: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let index: Int
    private let progress: Progress
    private var splitter = FeedLineSplitter(limit: 64 << 20)

    init(index: Int, progress: Progress) {
        self.index = index
        self.progress = progress
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .body(let bytes) = unwrapInboundIn(data) else { return }
        splitter.append(bytes)
        var latest: UInt64?
        while let line = try? splitter.nextLine() {
            if let revision = Self.revision(of: line) { latest = revision }
        }
        if let latest { progress.record(watcher: index, revision: latest) }
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

    /// Opens one watch connection.
    static func connect(endpoint: FeedEndpoint, index: Int, progress: Progress, group: any EventLoopGroup) async throws -> any Channel {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(WireWatcher(index: index, progress: progress))
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
