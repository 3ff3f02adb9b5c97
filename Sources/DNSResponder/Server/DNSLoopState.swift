import Logging
import NIOCore

/// Everything one event loop needs to answer queries: the current record table, the
/// query processor and this loop's forwarder. Confined to its loop, so reads take no lock;
/// a new table arrives as a task on the loop (see ``DNSServer/replaceTable(_:)``).
final class DNSLoopState {
    var table: DNSRecordTable?
    let processor: DNSQueryProcessor
    let forwarder: DNSForwarder
    /// The buffers responses are written into, used in turn. Handing a reply to NIO shares
    /// its storage until NIO has sent it (when the read burst is flushed); by the time the
    /// ring comes round to a buffer its storage is unique again and is reused, so a loop
    /// answers without allocating response memory. With one buffer, every reply in a burst
    /// after the first would allocate, since the previous one is still queued.
    private let scratch: UnsafeMutablePointer<ByteBuffer>
    private var nextScratch = 0
    /// Twice the most datagrams one read hands over, so a whole burst's replies can be
    /// queued at once and the ring still finds sent buffers.
    static let scratchCount = 32
    /// This loop's counters: 16 by rcode, then cache hits, forwarded, dropped. Plain
    /// memory, touched only on this loop: no lock, no atomic, no exclusivity check.
    private let counters: UnsafeMutablePointer<UInt64>
    private static let cacheHitsCounter = 16, forwardedCounter = 17, droppedCounter = 18, counterCount = 19

    /// The counters as a value, read on this loop.
    var statistics: DNSStatistics {
        var result = DNSStatistics()
        for code in 0..<16 where counters[code] > 0 {
            result.answeredByCode[DNSStatistics.codeName(UInt8(code)), default: 0] += counters[code]
        }
        result.cacheHits = counters[Self.cacheHitsCounter]
        result.forwarded = counters[Self.forwardedCounter]
        result.dropped = counters[Self.droppedCounter]
        return result
    }

    @inline(__always)
    private func countReply(_ output: ByteBuffer) {
        let code = output.getInteger(at: output.readerIndex + 3, as: UInt8.self).map { Int($0 & 0x0F) } ?? 2
        counters[code] &+= 1
    }

    init(table: DNSRecordTable?, processor: DNSQueryProcessor, forwarder: DNSForwarder, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.table = table
        self.processor = processor
        self.forwarder = forwarder
        scratch = .allocate(capacity: Self.scratchCount)
        for index in 0..<Self.scratchCount { (scratch + index).initialize(to: allocator.buffer(capacity: 512)) }
        counters = .allocate(capacity: Self.counterCount)
        counters.initialize(repeating: 0, count: Self.counterCount)
    }

    deinit {
        scratch.deinitialize(count: Self.scratchCount)
        scratch.deallocate()
        counters.deallocate()
    }

    /// What to do with one received message.
    enum Action {
        case reply(ByteBuffer)
        case forward(DNSForwardRequest)
        case drop
    }

    /// Decides what to do with one received message: an answer from the table or the
    /// cache is ready at once; anything else goes upstream.
    @inline(__always)
    func process(_ packet: ByteBuffer, source: SocketAddress?, overTCP: Bool) -> Action {
        let table = self.table
        // Moved out of the ring, so `output` is uniquely referenced while written.
        let slot = scratch + nextScratch
        nextScratch = nextScratch + 1 == Self.scratchCount ? 0 : nextScratch + 1
        var output = slot.move()
        defer { slot.initialize(to: output) }
        return packet.withUnsafeReadableBytes { bytes -> Action in
            switch processor.process(bytes, source: source, overTCP: overTCP, table: table, into: &output) {
            case .reply:
                countReply(output)
                return .reply(output)
            case .drop:
                counters[Self.droppedCounter] &+= 1
                return .drop
            case .forward(let query):
                if forwarder.cachedResponse(bytes, query: query, overTCP: overTCP, into: &output) {
                    countReply(output)
                    counters[Self.cacheHitsCounter] &+= 1
                    return .reply(output)
                }
                counters[Self.forwardedCounter] &+= 1
                return .forward(DNSQueryProcessor.forwardRequest(query, packet: bytes, overTCP: overTCP))
            }
        }
    }
}
