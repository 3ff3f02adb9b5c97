import NIOCore
import MirrorModel

/// One open watch stream: writes events in revision order and cuts itself when the peer
/// reads too slowly, so a stuck client never makes the server's memory grow without bound.
///
/// The client then reconnects with the last revision it applied and resumes. Lives on its
/// channel's event loop only. Events arrive already framed as HTTP chunks.
final class FeedWatchSession {
    private let context: ChannelHandlerContext
    /// The last revision written; older or equal broadcasts (queued before this stream
    /// started) are skipped.
    private var lastRevision: UInt64
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

    /// Writes the first chunks of the stream (snapshot, or resume and missed deltas).
    /// - Returns: when they have been written to the socket (or failed to).
    func start(_ chunks: [(UInt64, ByteBuffer, String)], tally: inout FeedSendTally) -> EventLoopFuture<Void> {
        let written = context.eventLoop.makePromise(of: Void.self)
        for (index, (_, chunk, type)) in chunks.enumerated() {
            tally.count(type: type, bytes: chunk.readableBytes)
            context.write(NIOAny(chunk), promise: index == chunks.count - 1 ? written : nil)
        }
        if chunks.isEmpty { written.succeed() }
        context.flush()
        return written.futureResult
    }

    /// Writes the part of `batch` this stream has not seen yet.
    func send(_ batch: FeedBroadcast, tally: inout FeedSendTally) {
        guard !closed else { return }
        // Bytes handed to the channel and not yet taken by the kernel.
        let unsent = (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
        if unsent > allowance {
            tally.cut += 1
            close()
            return
        }
        var wrote = false
        for (revision, chunk, type) in batch.lines {
            if batch.isBookmark {
                guard revision == lastRevision else { continue }
            } else {
                guard revision > lastRevision else { continue }
                lastRevision = revision
                if batch.isReset { allowance = maxBacklog + chunk.readableBytes }
            }
            write(chunk, type: type, tally: &tally)
            wrote = true
        }
        if wrote { context.flush() }
    }

    private func write(_ chunk: ByteBuffer, type: String, tally: inout FeedSendTally) {
        tally.count(type: type, bytes: chunk.readableBytes)
        context.write(NIOAny(chunk), promise: nil)
    }

    /// Ends the stream: the last chunk (so HTTP clients see a clean end), then close.
    /// - Returns: when the connection is closed.
    func finish() -> EventLoopFuture<Void> {
        guard !closed else { return context.eventLoop.makeSucceededVoidFuture() }
        closed = true
        context.write(NIOAny(ByteBuffer(string: "0\r\n\r\n")), promise: nil)
        context.flush()
        let done = context.eventLoop.makePromise(of: Void.self)
        context.close(promise: done)
        return done.futureResult
    }

    func close() {
        guard !closed else { return }
        closed = true
        context.close(promise: nil)
    }
}
