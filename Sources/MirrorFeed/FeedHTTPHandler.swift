import Foundation
import Logging
import NIOCore
import NIOHTTP1
import MirrorModel

/// Serves one HTTP/1.1 connection of the feed server: `/v1/watch` (the stream), `/v1/exports`
/// (the gateways' stream, when the feed serves exports), `/healthz`, `/readyz` and `/metrics`.
///
/// A watch request turns the connection into a ``FeedWatchSession`` until either side
/// closes it; every other request gets a small complete response. Responses are written as
/// raw bytes (only the request side goes through NIOHTTP1's decoder), so that each event is
/// framed once as a chunk and the same buffer goes to every watcher.
final class FeedHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = ByteBuffer

    private let hub: FeedHub
    private let exportsHub: FeedHub?
    private let logger: Logger
    private var request: HTTPRequestHead?
    private var watch: (session: FeedWatchSession, loop: FeedLoopWatchers, hub: FeedHub)?

    init(hub: FeedHub, exportsHub: FeedHub? = nil, logger: Logger) {
        self.hub = hub
        self.exportsHub = exportsHub
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard watch == nil else { return }  // a watch stream ignores anything sent after its request
        switch unwrapInboundIn(data) {
        case .head(let head): request = head
        case .body: break
        case .end:
            guard let head = request else { return }
            request = nil
            route(head, context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let watch {
            watch.loop.remove(watch.session)
            self.watch = nil
            watch.hub.metrics.update { $0.watchers -= 1 }
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("feed connection error", metadata: ["peer": "\(context.remoteAddress?.description ?? "?")", "error": "\(error)"])
        if watch == nil, error is HTTPParserError {
            let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["connection": "close"])
            respond(context, head, .badRequest, "malformed HTTP request\n")
        } else {
            context.close(promise: nil)
        }
    }

    private func route(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let components = URLComponents(string: head.uri)
        let path = components?.path ?? head.uri
        guard head.method == .GET || head.method == .HEAD else {
            respond(context, head, .methodNotAllowed, "only GET is served\n", extra: [("allow", "GET")])
            return
        }
        switch path {
        case "/healthz":
            respond(context, head, .ok, "ok\n")
        case "/readyz":
            hub.isReady ? respond(context, head, .ok, "ready\n") : respond(context, head, .serviceUnavailable, "no mirror state loaded yet\n")
        case "/metrics":
            respond(context, head, .ok, hub.metrics.render(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        case FeedWatchRequest.path where head.method == .HEAD, ExportsEvent.path where head.method == .HEAD && exportsHub != nil:
            respond(context, head, .methodNotAllowed, "the watch stream is served to GET only\n", extra: [("allow", "GET")])
        case FeedWatchRequest.path:
            startWatch(head, query: components?.queryItems ?? [], hub: hub, context: context)
        case ExportsEvent.path:
            guard let exportsHub else {
                respond(context, head, .notFound, "this feed serves no exports (start it with --exports)\n")
                return
            }
            startWatch(head, query: components?.queryItems ?? [], hub: exportsHub, context: context)
        default:
            respond(context, head, .notFound, "unknown path \(path); the feed is at \(FeedWatchRequest.path)\n")
        }
    }

    private func startWatch(_ head: HTTPRequestHead, query: [URLQueryItem], hub: FeedHub, context: ChannelHandlerContext) {
        let request: FeedWatchRequest
        do {
            request = try FeedWatchRequest(queryItems: query)
        } catch {
            respond(context, head, .badRequest, "\(error)\n")
            return
        }
        let lines: [(UInt64, ByteBuffer, String)], resumed: Bool, loop: FeedLoopWatchers
        switch hub.start(on: context.eventLoop, since: request.since, epoch: request.epoch) {
        case .unavailable:
            respond(context, head, .serviceUnavailable, "the feed has no \(hub === exportsHub ? "exports" : "state") yet or is shutting down; retry\n", extra: [("retry-after", "1")])
            return
        case .busy:
            respond(context, head, .serviceUnavailable, "too many snapshots in flight; retry\n", extra: [("retry-after", "1")])
            return
        case let .lines(started, wasResumed, watchers):
            (lines, resumed, loop) = (started, wasResumed, watchers)
        }
        context.write(wrapOutboundOut(Self.head(.ok, [
            ("content-type", FeedWatchRequest.contentType), ("transfer-encoding", "chunked"),
            ("cache-control", "no-store"), ("x-mirror-feed-epoch", hub.epoch),
        ], allocator: context.channel.allocator)), promise: nil)
        let initialBytes = lines.reduce(0) { $0 + $1.1.readableBytes }
        let session = FeedWatchSession(context: context, startRevision: lines.last?.0 ?? 0,
                                       initialBytes: initialBytes, maxBacklog: hub.configuration.maxWatcherBacklog)
        var tally = FeedSendTally()
        let written = session.start(lines, tally: &tally)
        if !resumed, let size = lines.first?.1.readableBytes {
            written.whenComplete { [hub] _ in hub.snapshotDone(size: size) }
        }
        loop.add(session)
        watch = (session, loop, hub)
        tally.record(into: hub.metrics)
        hub.metrics.update {
            $0.watchers += 1
            $0.watchesStarted[resumed ? "resume" : "snapshot", default: 0] += 1
        }
        logger.debug("watch started", metadata: [
            "peer": "\(context.remoteAddress?.description ?? "?")", "since": "\(request.since.map(String.init) ?? "-")",
            "resumed": "\(resumed)", "revision": "\(lines.last?.0 ?? 0)",
        ])
    }

    private func respond(_ context: ChannelHandlerContext, _ request: HTTPRequestHead, _ status: HTTPResponseStatus, _ body: String,
                         contentType: String = "text/plain; charset=utf-8", extra: [(String, String)] = []) {
        let keepAlive = request.isKeepAlive
        var headers = [("content-type", contentType), ("content-length", "\(body.utf8.count)")] + extra
        if !keepAlive { headers.append(("connection", "close")) }
        var response = Self.head(status, headers, allocator: context.channel.allocator)
        if request.method != .HEAD { response.writeString(body) }
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(response), promise: done)
        if !keepAlive {
            done.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    /// An HTTP/1.1 status line and headers, ending with the blank line.
    private static func head(_ status: HTTPResponseStatus, _ headers: [(String, String)], allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 256)
        buffer.writeString("HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\n")
        for (name, value) in headers { buffer.writeString("\(name): \(value)\r\n") }
        buffer.writeString("\r\n")
        return buffer
    }
}

/// The query of a watch request: `GET /v1/watch?since=REV&epoch=EPOCH`.
public struct FeedWatchRequest: Equatable, Sendable {
    /// The watch stream's path.
    public static let path = "/v1/watch"
    /// The stream's media type: newline-delimited JSON.
    public static let contentType = "application/x-ndjson"

    /// The last revision the client applied; nil for a fresh start.
    public var since: UInt64?
    /// The server instance that revision came from.
    public var epoch: String?

    public init(since: UInt64?, epoch: String?) {
        self.since = since
        self.epoch = epoch
    }

    init(queryItems: [URLQueryItem]) throws {
        for item in queryItems {
            switch item.name {
            case "since":
                guard let text = item.value, let value = UInt64(text) else {
                    throw FeedRequestError(message: "since=\(item.value ?? ""): expected a revision (an unsigned integer)")
                }
                since = value
            case "epoch":
                epoch = item.value
            default:
                continue  // unknown parameters are ignored, for forward compatibility
            }
        }
    }

    /// The request target: `/v1/watch?since=12&epoch=…`.
    public var target: String { target(path: Self.path) }

    /// The request target for the stream at `path` (the watch or the exports stream).
    public func target(path: String) -> String {
        var items: [URLQueryItem] = []
        if let since { items.append(URLQueryItem(name: "since", value: String(since))) }
        if let epoch { items.append(URLQueryItem(name: "epoch", value: epoch)) }
        var components = URLComponents()
        components.path = path
        if !items.isEmpty { components.queryItems = items }
        return components.string ?? path
    }
}

/// A watch request the server cannot serve as asked.
struct FeedRequestError: Error, CustomStringConvertible {
    var message: String
    var description: String { "bad watch request: \(message)" }
}
