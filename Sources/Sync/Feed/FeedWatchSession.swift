import NIOCore
import NIOHTTP1

/// One open watch stream: writes events in revision order and cuts itself when the peer
/// reads too slowly, so a stuck client never makes the server's memory grow without bound.
///
/// The client then reconnects with the last revision it applied and resumes. Lives on its
/// channel's event loop only.
final class FeedWatchSession {
    private let context: ChannelHandlerContext
    /// The last revision written; older or equal broadcasts (queued before this stream
    /// started) are skipped.
    private var lastRevision: UInt64
    /// Bytes handed to the channel and not yet written to the socket.
    private var pendingBytes = 0
    /// How many unsent bytes are tolerated before the stream is cut.
    private var allowance: Int
    private let maxBacklog: Int
    private var closed = false

    init(context: ChannelHandlerContext, startRevision: UInt64, initialBytes: Int, maxBacklog: Int) {
        self.context = context
        self.lastRevision = startRevision
        self.maxBacklog = maxBacklog
        self.allowance = maxBacklog + initialBytes
    }

    /// Writes the first lines of the stream (snapshot, or resume and missed deltas).
    func start(_ lines: [(UInt64, ByteBuffer, String)], tally: inout FeedSendTally) {
        for (_, line, type) in lines { write(line, type: type, tally: &tally) }
        context.flush()
    }

    /// Writes the part of `batch` this stream has not seen yet.
    func send(_ batch: FeedBroadcast, tally: inout FeedSendTally) {
        guard !closed else { return }
        if pendingBytes > allowance {
            tally.cut += 1
            close()
            return
        }
        var wrote = false
        for (revision, line, type) in batch.lines {
            if batch.isBookmark {
                guard revision == lastRevision else { continue }
            } else {
                guard revision > lastRevision else { continue }
                lastRevision = revision
                if batch.isReset { allowance = maxBacklog + line.readableBytes }
            }
            write(line, type: type, tally: &tally)
            wrote = true
        }
        if wrote { context.flush() }
    }

    private func write(_ line: ByteBuffer, type: String, tally: inout FeedSendTally) {
        let size = line.readableBytes
        pendingBytes += size
        tally.count(type: type, bytes: size)
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenComplete { [self] _ in pendingBytes -= size }
        context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(line))), promise: promise)
    }

    func close() {
        guard !closed else { return }
        closed = true
        context.close(promise: nil)
    }
}
