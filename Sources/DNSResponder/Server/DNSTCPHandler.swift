import NIOCore

/// Serves DNS on one TCP connection: several length-prefixed queries per connection
/// (RFC 7766), answered as they are ready, possibly out of order. The connection closes
/// when it has been idle for the configured time, or when the client has finished sending
/// and every answer has been written.
final class DNSTCPHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let state: DNSLoopState
    private var outstanding = 0
    private var inputClosed = false

    init(state: DNSLoopState) {
        self.state = state
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let message = unwrapInboundIn(data)
        let channel = context.channel
        switch state.process(message, source: channel.remoteAddress, overTCP: true) {
        case .reply(let response):
            context.write(wrapOutboundOut(.dnsTCPFrame(response, allocator: channel.allocator)), promise: nil)
        case .forward(let request):
            outstanding += 1
            let bound = NIOLoopBound(self, eventLoop: channel.eventLoop)
            state.forwarder.resolve(request, allocator: channel.allocator) { response in
                channel.writeAndFlush(ByteBuffer.dnsTCPFrame(response, allocator: channel.allocator), promise: nil)
                bound.value.answered(channel: channel)
            }
        case .drop:
            // Nothing sensible can follow an unreadable message on a stream.
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    private func answered(channel: any Channel) {
        outstanding -= 1
        if inputClosed, outstanding == 0 { channel.close(promise: nil) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is IdleStateHandler.IdleStateEvent:
            context.close(promise: nil)
        case let channelEvent as ChannelEvent where channelEvent == .inputClosed:
            inputClosed = true
            if outstanding == 0 { context.close(promise: nil) }
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
