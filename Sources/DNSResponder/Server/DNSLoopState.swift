import Logging
import NIOCore

/// Everything one event loop needs to answer queries: the current record table, the
/// query processor and this loop's forwarder. Confined to its loop, so reads take no lock;
/// a new table arrives as a task on the loop (see ``DNSServer/replaceTable(_:)``).
final class DNSLoopState {
    var table: DNSRecordTable?
    let processor: DNSQueryProcessor
    let forwarder: DNSForwarder

    init(table: DNSRecordTable?, processor: DNSQueryProcessor, forwarder: DNSForwarder) {
        self.table = table
        self.processor = processor
        self.forwarder = forwarder
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
    func process(_ packet: ByteBuffer, source: SocketAddress?, overTCP: Bool, allocator: ByteBufferAllocator) -> Action {
        let table = self.table
        return packet.withUnsafeReadableBytes { bytes -> Action in
            switch processor.process(bytes, source: source, overTCP: overTCP, table: table, allocator: allocator) {
            case .reply(let response):
                return .reply(response)
            case .drop:
                return .drop
            case .forward(let query):
                if let cached = forwarder.cachedResponse(bytes, query: query, overTCP: overTCP, allocator: allocator) {
                    return .reply(cached)
                }
                return .forward(DNSQueryProcessor.forwardRequest(query, packet: bytes, overTCP: overTCP))
            }
        }
    }
}
