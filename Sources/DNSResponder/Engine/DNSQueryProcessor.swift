import NIOCore

/// A query that the record table does not own, to be sent upstream.
struct DNSForwardRequest {
    var query: DNSQueryView
    /// The client's question section, as asked (name, type, class).
    var question: [UInt8]
    /// The cache key (see ``DNSCacheKey``) and its hash.
    var key: [UInt8]
    var keyHash: UInt64
    var overTCP: Bool
}

/// The decision for one received packet.
enum DNSProcessResult {
    case reply(ByteBuffer)
    /// Not ours: the query to forward (read from the same packet).
    case forward(DNSQueryView)
    case drop
}

/// Decides what to do with one query, following DESIGN.md "DNS behaviour" in this order:
/// unreadable → drop; client outside `--allow` → REFUSED; bad header → NOTIMP/FORMERR;
/// malformed sections → FORMERR; EDNS version > 0 → BADVERS; then the record table:
/// owned names get authoritative answers (data, NODATA+SOA, NXDOMAIN+SOA), others are
/// forwarded. Pure: no I/O, so it is tested directly with bytes.
struct DNSQueryProcessor {
    var access: DNSAccessList

    func process(_ packet: UnsafeRawBufferPointer, source: SocketAddress?, overTCP: Bool, table: DNSRecordTable?,
                 allocator: ByteBufferAllocator) -> DNSProcessResult {
        let query: DNSQueryView
        switch DNSQueryView.read(packet) {
        case .drop:
            return .drop
        case let .headerOnly(id, flags, rcode):
            let allowed = access.allows(source)
            return .reply(DNSResponseWriter.headerOnly(id: id, queryFlags: flags, rcode: allowed ? rcode : .refused, allocator: allocator))
        case .formatError(let view):
            guard access.allows(source) else { return .reply(DNSResponseWriter.bare(view, packet: packet, rcode: .refused, allocator: allocator)) }
            return .reply(DNSResponseWriter.bare(view, packet: packet, rcode: .formatError, allocator: allocator))
        case .query(let view):
            query = view
        }
        guard access.allows(source) else { return .reply(DNSResponseWriter.bare(query, packet: packet, rcode: .refused, allocator: allocator)) }
        if let edns = query.edns, edns.version > 0 {
            return .reply(DNSResponseWriter.bare(query, packet: packet, rcode: .badVersion, allocator: allocator))
        }
        guard let table else { return .reply(DNSResponseWriter.bare(query, packet: packet, rcode: .serverFailure, allocator: allocator)) }

        switch table.match(packet, start: DNSLimits.headerSize, length: query.nameLength, labelCount: query.labelCount) {
        case .notOwned:
            return .forward(query)
        case .below(let zone):
            guard Self.isAnswerableClass(query) else { return .reply(DNSResponseWriter.bare(query, packet: packet, rcode: .refused, allocator: allocator)) }
            return .reply(DNSResponseWriter.authoritative(query, packet: packet, rcode: .nameError, table: table, answer: nil, zone: zone,
                                                          limit: DNSResponseWriter.sizeLimit(for: query, overTCP: overTCP), allocator: allocator))
        case .name(let index):
            guard Self.isAnswerableClass(query), query.type != DNSRecordType.axfr.rawValue, query.type != DNSRecordType.ixfr.rawValue else {
                return .reply(DNSResponseWriter.bare(query, packet: packet, rcode: .refused, allocator: allocator))
            }
            let answer = table.rrset(at: index, type: query.type) ?? table.rrset(at: index, type: DNSRecordType.cname.rawValue)
            return .reply(DNSResponseWriter.authoritative(query, packet: packet, rcode: .noError, table: table, answer: answer,
                                                          zone: table.entries[index].zone,
                                                          limit: DNSResponseWriter.sizeLimit(for: query, overTCP: overTCP), allocator: allocator))
        }
    }

    /// Owned names exist only in class IN (ANY is accepted as a question class).
    @inline(__always)
    private static func isAnswerableClass(_ query: DNSQueryView) -> Bool {
        query.class == DNSClass.in.rawValue || query.class == DNSClass.any.rawValue
    }

    static func forwardRequest(_ query: DNSQueryView, packet: UnsafeRawBufferPointer, overTCP: Bool) -> DNSForwardRequest {
        DNSForwardRequest(query: query, question: Array(packet[DNSLimits.headerSize..<query.questionEnd]),
                          key: DNSCacheKey.bytes(packet, query: query), keyHash: DNSCacheKey.hash(packet, query: query), overTCP: overTCP)
    }
}
