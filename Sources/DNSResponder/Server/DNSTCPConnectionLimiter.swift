import NIOCore

/// Sits on the TCP listener and closes accepted connections beyond the cap, so a flood of
/// idle connections cannot exhaust descriptors or memory.
final class DNSTCPConnectionLimiter: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    private let maximum: Int
    private var open = 0

    init(maximum: Int) {
        self.maximum = maximum
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = unwrapInboundIn(data)
        guard open < maximum else {
            child.close(promise: nil)
            return
        }
        open += 1
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let loop = context.eventLoop
        child.closeFuture.whenComplete { _ in
            loop.execute { bound.value.open -= 1 }
        }
        context.fireChannelRead(data)
    }
}
