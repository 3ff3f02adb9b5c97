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
    /// The response has been written to the output buffer.
    case reply
    /// Not ours: the query to forward (read from the same packet).
    case forward(DNSQueryView)
    case drop
}

/// Decides what to do with one query, following docs/architecture.md "DNS behaviour" in this order:
/// unreadable → drop; client outside `--allow` → REFUSED; bad header → NOTIMP/FORMERR;
/// malformed sections → FORMERR; EDNS version > 0 → BADVERS; then the record table:
/// owned names get authoritative answers (data, NODATA+SOA, NXDOMAIN+SOA), others are
/// forwarded. Pure: no I/O, so it is tested directly with bytes.
struct DNSQueryProcessor {
    var access: DNSAccessList

    func process(_ packet: UnsafeRawBufferPointer, source: SocketAddress?, overTCP: Bool, table: DNSRecordTable?,
                 into output: inout ByteBuffer) -> DNSProcessResult {
        process(packet, allowed: access.allows(source), overTCP: overTCP, table: table, into: &output)
    }

    /// As above, with the access decision already made by the caller (who may hold the
    /// client's address as a raw `sockaddr` rather than a `SocketAddress`).
    func process(_ packet: UnsafeRawBufferPointer, allowed: Bool, overTCP: Bool, table: DNSRecordTable?,
                 into output: inout ByteBuffer) -> DNSProcessResult {
        let query: DNSQueryView
        switch DNSQueryView.read(packet) {
        case .drop:
            return .drop
        case let .headerOnly(id, flags, rcode):
            return reply(DNSResponseWriter.headerOnly(id: id, queryFlags: flags, rcode: allowed ? rcode : .refused, into: &output))
        case .formatError(let view):
            guard allowed else { return reply(DNSResponseWriter.bare(view, packet: packet, rcode: .refused, into: &output)) }
            return reply(DNSResponseWriter.bare(view, packet: packet, rcode: .formatError, into: &output))
        case .query(let view):
            query = view
        }
        guard allowed else { return reply(DNSResponseWriter.bare(query, packet: packet, rcode: .refused, into: &output)) }
        if let edns = query.edns, edns.version > 0 {
            return reply(DNSResponseWriter.bare(query, packet: packet, rcode: .badVersion, into: &output))
        }
        guard let table else { return reply(DNSResponseWriter.bare(query, packet: packet, rcode: .serverFailure, into: &output)) }

        switch table.match(packet, start: DNSLimits.headerSize, length: query.nameLength, labelCount: query.labelCount) {
        case .notOwned:
            return .forward(query)
        case .below(let zone):
            guard Self.isAnswerableClass(query) else { return reply(DNSResponseWriter.bare(query, packet: packet, rcode: .refused, into: &output)) }
            return reply(DNSResponseWriter.authoritative(query, packet: packet, rcode: .nameError, table: table, answers: nil, zone: zone,
                                                          limit: DNSResponseWriter.sizeLimit(for: query, overTCP: overTCP), into: &output))
        case .name(let record):
            guard Self.isAnswerableClass(query), query.type != DNSRecordType.axfr.rawValue, query.type != DNSRecordType.ixfr.rawValue else {
                return reply(DNSResponseWriter.bare(query, packet: packet, rcode: .refused, into: &output))
            }
            // The data of the asked type, else a CNAME, else nothing (NODATA); ANY gets every set.
            let answers = query.type == DNSRecordType.any.rawValue ? record.allAnswers() : record.answers(type: query.type)
            return reply(DNSResponseWriter.authoritative(query, packet: packet, rcode: .noError, table: table, answers: answers,
                                                          zone: record.zone,
                                                          limit: DNSResponseWriter.sizeLimit(for: query, overTCP: overTCP), into: &output))
        }
    }

    /// Marks a response written to the output.
    @inline(__always)
    private func reply(_ written: Void) -> DNSProcessResult { .reply }

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
