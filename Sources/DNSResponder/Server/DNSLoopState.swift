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

    /// Decides what to do with one received message.
    @inline(__always)
    func process(_ packet: ByteBuffer, source: SocketAddress?, overTCP: Bool, allocator: ByteBufferAllocator) -> DNSProcessResult {
        let table = self.table
        return packet.withUnsafeReadableBytes {
            processor.process($0, source: source, overTCP: overTCP, table: table, allocator: allocator)
        }
    }
}
