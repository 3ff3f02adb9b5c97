import NIOCore

/// Answers queries from the current record table and the shared cache, on one thread: an
/// event loop, or a dedicated UDP reader (``DNSDatagramReader``). Everything it touches
/// per query is its own (reply buffers, counters) or shared read-only (the table) or
/// locked (the cache), so the hot path takes no lock of its own.
final class DNSAnswerer {
    var table: DNSRecordTable?
    let processor: DNSQueryProcessor
    let cache: DNSSharedResponseCache
    /// The buffers responses are written into, used in turn. Handing a reply on shares its
    /// storage until it has been sent; by the time the ring comes round to a buffer its
    /// storage is unique again and is reused, so answering allocates no response memory.
    /// With one buffer, every reply in a burst after the first would allocate, since the
    /// previous one is still queued.
    private let scratch: UnsafeMutablePointer<ByteBuffer>
    private var nextScratch = 0
    /// Twice the most datagrams one read hands over, so a whole burst's replies can be
    /// queued at once and the ring still finds sent buffers.
    static let scratchCount = 64
    /// The counters: 16 by rcode, then cache hits, forwarded, dropped. Plain memory,
    /// touched only by the owning thread: no lock, no atomic, no exclusivity check.
    private let counters: UnsafeMutablePointer<UInt64>
    private static let cacheHitsCounter = 16, forwardedCounter = 17, droppedCounter = 18, counterCount = 19

    init(table: DNSRecordTable?, processor: DNSQueryProcessor, cache: DNSSharedResponseCache,
         allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.table = table
        self.processor = processor
        self.cache = cache
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

    /// The counters as a value, read on the owning thread.
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

    /// What to do with one received message.
    enum Action {
        case reply(ByteBuffer)
        case forward(DNSForwardRequest)
        case drop
    }

    /// Decides what to do with one received message: an answer from the table or the
    /// cache is ready at once; anything else goes upstream.
    @inline(__always)
    func process(_ bytes: UnsafeRawBufferPointer, allowed: Bool, overTCP: Bool) -> Action {
        let table = self.table
        // Moved out of the ring, so `output` is uniquely referenced while written.
        let slot = scratch + nextScratch
        nextScratch = nextScratch + 1 == Self.scratchCount ? 0 : nextScratch + 1
        var output = slot.move()
        defer { slot.initialize(to: output) }
        switch processor.process(bytes, allowed: allowed, overTCP: overTCP, table: table, into: &output) {
        case .reply:
            countReply(output)
            return .reply(output)
        case .drop:
            counters[Self.droppedCounter] &+= 1
            return .drop
        case .forward(let query):
            if cache.response(to: bytes, query: query, overTCP: overTCP, into: &output) {
                countReply(output)
                counters[Self.cacheHitsCounter] &+= 1
                return .reply(output)
            }
            counters[Self.forwardedCounter] &+= 1
            return .forward(DNSQueryProcessor.forwardRequest(query, packet: bytes, overTCP: overTCP))
        }
    }
}
