import NIOCore
import MirrorModel

/// Cuts the watch stream's bytes into lines, however the network split them.
///
/// Memory is bounded: a line longer than ``limit`` is an error rather than a growing buffer.
public struct FeedLineSplitter: Sendable {
    /// The longest accepted line (one event), in bytes.
    public let limit: Int
    private var buffer = ByteBuffer()
    /// Where to resume searching for `\n` in `buffer`, so long lines are scanned once.
    private var scanned = 0

    public init(limit: Int) {
        self.limit = limit
    }

    /// Appends received bytes.
    public mutating func append(_ bytes: ByteBuffer) {
        var bytes = bytes
        if buffer.readableBytes == 0 {
            buffer = bytes
            scanned = 0
        } else {
            buffer.writeBuffer(&bytes)
        }
    }

    /// The next complete line without its `\n`, or nil when none is complete yet.
    ///
    /// Empty lines are skipped (a server may send them as keep-alives).
    /// - Throws: ``FeedProtocolError/lineTooLong(limit:)``.
    public mutating func nextLine() throws -> ByteBuffer? {
        while true {
            let view = buffer.readableBytesView
            guard let newline = view.dropFirst(scanned).firstIndex(of: UInt8(ascii: "\n")) else {
                scanned = view.count
                if view.count > limit { throw FeedProtocolError.lineTooLong(limit: limit) }
                return nil
            }
            let length = newline - view.startIndex
            scanned = 0
            guard length <= limit else { throw FeedProtocolError.lineTooLong(limit: limit) }
            let line = buffer.readSlice(length: length)
            buffer.moveReaderIndex(forwardBy: 1)
            if buffer.readableBytes == 0 { buffer.clear() }
            if let line, line.readableBytes > 0 { return line }
        }
    }

    /// Bytes received but not yet returned as a line.
    public var pendingBytes: Int { buffer.readableBytes }
}
