import NIOCore

/// Serves DNS on one UDP socket. Replies computed while reading a burst of datagrams are
/// written without flushing and flushed once when the burst ends, so NIO sends them with
/// one `sendmmsg`; forwarded answers are flushed as they arrive.
final class DNSUDPHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let state: DNSLoopState
    private var pendingFlush = false

    init(state: DNSLoopState) {
        self.state = state
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let remote = envelope.remoteAddress
        switch state.process(envelope.data, source: remote, overTCP: false) {
        case .reply(let response):
            context.write(wrapOutboundOut(AddressedEnvelope(remoteAddress: remote, data: response)), promise: nil)
            pendingFlush = true
        case .forward(let request):
            let channel = context.channel
            state.forwarder.resolve(request, allocator: channel.allocator) { response in
                channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: response), promise: nil)
            }
        case .drop:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if pendingFlush {
            pendingFlush = false
            context.flush()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A UDP socket stays up whatever one datagram did (e.g. ICMP errors reported late).
    }
}
