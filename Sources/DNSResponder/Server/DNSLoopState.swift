import Logging
import NIOCore

/// Everything one event loop needs to answer queries: the current record table, the
/// query processor and this loop's forwarder. Confined to its loop, so reads take no lock;
/// a new table arrives as a task on the loop (see ``DNSServer/replaceTable(_:)``).
final class DNSLoopState {
    var table: DNSRecordTable?
    let processor: DNSQueryProcessor
    let forwarder: DNSForwarder
    /// The buffer responses are written into. Handing a reply to NIO shares its storage;
    /// once NIO has sent it the storage is unique again and the next response reuses it,
    /// so a quiet-to-moderate loop answers without allocating response memory.
    private var scratch: ByteBuffer
    /// This loop's counters; plain integers, since only this loop touches them.
    private(set) var answeredByCode = [UInt64](repeating: 0, count: 16)
    private(set) var cacheHits: UInt64 = 0
    private(set) var forwarded: UInt64 = 0
    private(set) var dropped: UInt64 = 0

    /// The counters as a value, read on this loop.
    var statistics: DNSStatistics {
        var result = DNSStatistics()
        for (code, count) in answeredByCode.enumerated() where count > 0 {
            result.answeredByCode[DNSStatistics.codeName(UInt8(code)), default: 0] += count
        }
        result.cacheHits = cacheHits
        result.forwarded = forwarded
        result.dropped = dropped
        return result
    }

    private func countReply(_ output: ByteBuffer) {
        let code = output.getInteger(at: output.readerIndex + 3, as: UInt8.self).map { Int($0 & 0x0F) } ?? 2
        answeredByCode[code] &+= 1
    }

    init(table: DNSRecordTable?, processor: DNSQueryProcessor, forwarder: DNSForwarder, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.table = table
        self.processor = processor
        self.forwarder = forwarder
        scratch = allocator.buffer(capacity: 1024)
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
        var output = scratch
        scratch = ByteBuffer()  // keep `output` uniquely referenced while writing
        defer { scratch = output }
        return packet.withUnsafeReadableBytes { bytes -> Action in
            switch processor.process(bytes, source: source, overTCP: overTCP, table: table, into: &output) {
            case .reply:
                countReply(output)
                return .reply(output)
            case .drop:
                dropped &+= 1
                return .drop
            case .forward(let query):
                if forwarder.cachedResponse(bytes, query: query, overTCP: overTCP, into: &output) {
                    countReply(output)
                    cacheHits &+= 1
                    return .reply(output)
                }
                forwarded &+= 1
                return .forward(DNSQueryProcessor.forwardRequest(query, packet: bytes, overTCP: overTCP))
            }
        }
    }
}
