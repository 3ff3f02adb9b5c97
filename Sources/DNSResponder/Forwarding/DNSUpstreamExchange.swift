import NIOCore
import NIOPosix

/// One query to one upstream, over UDP or TCP, with a fresh random ID and (UDP) a fresh
/// socket on a kernel-chosen random port, so off-path spoofing has to guess both.
///
/// The answer is accepted only from the upstream's address, with our ID and our question;
/// anything else is ignored until the timeout.
enum DNSUpstreamExchange {
    /// Sends `question` (name, type, class) to `upstream` and completes with what came back.
    /// Never fails: errors and timeouts complete with ``DNSUpstreamAnswer/Outcome/failed(_:)``.
    static func send(question: [UInt8], checkingDisabled: Bool, dnssecOK: Bool, to upstream: SocketAddress, overTCP: Bool,
                     timeout: TimeAmount, maximumTTL: UInt32, on loop: any EventLoop) -> EventLoopFuture<DNSUpstreamAnswer.Outcome> {
        let id = UInt16.random(in: 0...UInt16.max)
        let query = makeQuery(id: id, question: question, checkingDisabled: checkingDisabled, dnssecOK: dnssecOK)
        let promise = loop.makePromise(of: DNSUpstreamAnswer.Outcome.self)
        let expectation = Expectation(id: id, question: question, upstream: upstream, maximumTTL: maximumTTL, promise: promise)
        let timer = loop.scheduleTask(in: timeout) { promise.succeed(.timedOut("no answer from \(upstream) within \(timeout)")) }
        let channelFuture: EventLoopFuture<any Channel>
        if overTCP {
            channelFuture = ClientBootstrap(group: loop)
                .connectTimeout(timeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(DNSFrameDecoder()))
                        try channel.pipeline.syncOperations.addHandler(TCPHandler(expectation: expectation))
                    }
                }
                .connect(to: upstream)
                .flatMap { channel in
                    var framed = channel.allocator.buffer(capacity: query.count + 2)
                    framed.writeInteger(UInt16(query.count))
                    framed.writeBytes(query)
                    return channel.writeAndFlush(framed).map { channel }
                }
        } else {
            let wildcard = upstream.protocol == .inet6 ? "::" : "0.0.0.0"
            channelFuture = DatagramBootstrap(group: loop)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(UDPHandler(expectation: expectation))
                    }
                }
                .bind(host: wildcard, port: 0)
                .flatMap { channel in
                    let envelope = AddressedEnvelope(remoteAddress: upstream, data: channel.allocator.buffer(bytes: query))
                    return channel.writeAndFlush(envelope).map { channel }
                }
        }
        channelFuture.whenComplete { result in
            switch result {
            case .success(let channel):
                promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
            case .failure(let error):
                promise.succeed(.failed("cannot query \(upstream): \(error)"))
            }
        }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        return promise.futureResult
    }

    /// A query with RD set and an OPT record advertising our payload size.
    static func makeQuery(id: UInt16, question: [UInt8], checkingDisabled: Bool, dnssecOK: Bool) -> [UInt8] {
        var writer = DNSMessageWriter(capacity: question.count + 23)
        var header = DNSHeader(id: id, questionCount: 1, additionalCount: 1)
        header.recursionDesired = true
        header.checkingDisabled = checkingDisabled
        writer.append(header)
        writer.append(question)
        writer.append(DNSEDNS(dnssecOK: dnssecOK))
        return writer.bytes
    }

    /// What a reply must match.
    struct Expectation: Sendable {
        var id: UInt16
        var question: [UInt8]
        var upstream: SocketAddress
        var maximumTTL: UInt32
        var promise: EventLoopPromise<DNSUpstreamAnswer.Outcome>
    }

    /// Completes the exchange with the first reply that matches.
    static func receive(_ payload: ByteBuffer, expectation: Expectation, overTCP: Bool) {
        let outcome = payload.withUnsafeReadableBytes {
            DNSUpstreamAnswer.check($0, id: expectation.id, question: expectation.question, maximumTTL: expectation.maximumTTL)
        }
        switch outcome {
        case .unrelated:
            if overTCP { expectation.promise.succeed(.failed("unrelated answer over TCP from \(expectation.upstream)")) }
        case .truncated where overTCP:
            expectation.promise.succeed(.failed("truncated answer over TCP from \(expectation.upstream)"))
        default:
            expectation.promise.succeed(outcome)
        }
    }

    /// Receives datagrams on the per-query socket; only the upstream's address counts.
    final class UDPHandler: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        private let expectation: Expectation

        init(expectation: Expectation) { self.expectation = expectation }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            guard envelope.remoteAddress == expectation.upstream else { return }
            DNSUpstreamExchange.receive(envelope.data, expectation: expectation, overTCP: false)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            // ICMP port unreachable and the like: this upstream is not answering.
            expectation.promise.succeed(.failed("error talking to \(expectation.upstream): \(error)"))
        }
    }

    /// Receives framed messages on the per-query connection.
    final class TCPHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        private let expectation: Expectation

        init(expectation: Expectation) { self.expectation = expectation }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            DNSUpstreamExchange.receive(unwrapInboundIn(data), expectation: expectation, overTCP: true)
        }

        func channelInactive(context: ChannelHandlerContext) {
            expectation.promise.succeed(.failed("connection to \(expectation.upstream) closed before an answer"))
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            expectation.promise.succeed(.failed("error talking to \(expectation.upstream): \(error)"))
            context.close(promise: nil)
        }
    }
}
