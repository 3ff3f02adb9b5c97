import NIOCore

/// Everything one event loop needs to serve queries: an answerer for the queries its
/// channels read (TCP, and UDP when read by NIO) and this loop's forwarder, which also
/// takes the misses of the dedicated UDP readers. Confined to its loop, so reads take no
/// lock; a new table arrives as a task on the loop (see ``DNSServer/replaceTable(_:)``).
final class DNSLoopState {
    let answerer: DNSAnswerer
    let forwarder: DNSForwarder

    init(answerer: DNSAnswerer, forwarder: DNSForwarder) {
        self.answerer = answerer
        self.forwarder = forwarder
    }

    /// Decides what to do with one received message (see ``DNSAnswerer/process(_:allowed:overTCP:)``).
    @inline(__always)
    func process(_ packet: ByteBuffer, source: SocketAddress?, overTCP: Bool) -> DNSAnswerer.Action {
        let allowed = answerer.processor.access.allows(source)
        return packet.withUnsafeReadableBytes { answerer.process($0, allowed: allowed, overTCP: overTCP) }
    }
}
