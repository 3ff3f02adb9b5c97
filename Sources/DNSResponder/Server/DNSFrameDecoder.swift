import NIOCore

/// Splits a TCP stream into DNS messages, each preceded by its 2-byte length (RFC 1035
/// §4.2.2). A message can never exceed 65535 bytes, so buffering is bounded by design.
struct DNSFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self),
              buffer.readableBytes >= 2 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 2)
        guard let frame = buffer.readSlice(length: Int(length)) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}

extension ByteBuffer {
    /// `message` with its 2-byte length prefix, ready for a DNS-over-TCP stream.
    static func dnsTCPFrame(_ message: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        var framed = allocator.buffer(capacity: message.readableBytes + 2)
        framed.writeInteger(UInt16(truncatingIfNeeded: message.readableBytes))
        framed.writeImmutableBuffer(message)
        return framed
    }
}
