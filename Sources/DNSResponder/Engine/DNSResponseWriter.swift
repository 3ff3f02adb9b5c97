import NIOCore

/// Writes responses straight into a `ByteBuffer`: the header, the question copied from the
/// query (so its case is echoed), precomputed sections, and the OPT record.
///
/// Every function clears the buffer it is given and writes one whole response, so the
/// servers can reuse one buffer per loop: its storage is reused whenever the previous
/// response has left the socket, and replaced (not copied) when it has not.
enum DNSResponseWriter {
    /// The 11-byte OPT record this responder sends: root owner, 1232-byte payload, version 0.
    static let optLength = 11

    /// The largest response the client can take over the transport it used.
    @inline(__always)
    static func sizeLimit(for query: DNSQueryView, overTCP: Bool) -> Int {
        if overTCP { return 65535 }
        guard let edns = query.edns else { return DNSLimits.classicUDPSize }
        return max(DNSLimits.classicUDPSize, min(Int(edns.udpPayloadSize), DNSLimits.advertisedUDPSize))
    }

    /// The flags word of a response to a query with `queryFlags`: QR and RA set, RD, CD and
    /// the opcode echoed, AA and TC as given, and the low bits of `rcode`.
    @inline(__always)
    static func flags(query queryFlags: UInt16, rcode: DNSResponseCode, authoritative: Bool, truncated: Bool = false, extra: UInt16 = 0) -> UInt16 {
        var flags = DNSHeader.qrBit | DNSHeader.raBit | (queryFlags & (DNSHeader.rdBit | DNSHeader.cdBit | 0x7800)) | (rcode.rawValue & 0xF) | extra
        if authoritative { flags |= DNSHeader.aaBit }
        if truncated { flags |= DNSHeader.tcBit }
        return flags
    }

    @inline(__always)
    static func writeHeader(_ buffer: inout ByteBuffer, id: UInt16, flags: UInt16, questions: UInt16, answers: UInt16, authorities: UInt16, additionals: UInt16) {
        buffer.writeMultipleIntegers(id, flags, questions, answers, authorities, additionals)
    }

    /// A response with only a header (the question could not be read, or the opcode is
    /// not supported).
    static func headerOnly(id: UInt16, queryFlags: UInt16, rcode: DNSResponseCode, into buffer: inout ByteBuffer) {
        buffer.clear()
        writeHeader(&buffer, id: id, flags: flags(query: queryFlags, rcode: rcode, authoritative: false), questions: 0, answers: 0, authorities: 0, additionals: 0)
    }

    /// A response echoing the question with no records: errors such as FORMERR, SERVFAIL,
    /// REFUSED and BADVERS. OPT is added when the query had one.
    static func bare(_ query: DNSQueryView, packet: UnsafeRawBufferPointer, rcode: DNSResponseCode, into buffer: inout ByteBuffer) {
        buffer.clear()
        let question = UnsafeRawBufferPointer(rebasing: packet[DNSLimits.headerSize..<query.questionEnd])
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: DNSLimits.headerSize + question.count + optLength) { out in
            guard let base = out.baseAddress else { return 0 }
            var writer = DNSRawWriter(base: base)
            writer.header(id: query.id, flags: flags(query: query.flags, rcode: rcode, authoritative: false), questions: 1, answers: 0,
                          authorities: 0, additionals: query.edns == nil ? 0 : 1)
            if let source = question.baseAddress { writer.copy(source, count: question.count) }
            if let edns = query.edns { writer.opt(edns, rcode: rcode) }
            return writer.offset
        }
    }

    /// An authoritative response from the record table: the precomputed `answers` (one
    /// type, or all for ANY), or when there are none the SOA of `zone` in authority.
    /// Truncated to header, question and OPT with TC=1 when it exceeds `limit`.
    @inline(__always)
    static func authoritative(_ query: DNSQueryView, packet: UnsafeRawBufferPointer, rcode: DNSResponseCode,
                              table: DNSRecordTable, answers: DNSAnswerRun?, zone: Int,
                              limit: Int, into buffer: inout ByteBuffer) {
        let answerLength = answers?.length ?? 0
        let answerCount = answers?.count ?? 0
        let soa: DNSRecordTable.Zone? = zone >= 0 && answerCount == 0 ? table.zones[zone] : nil
        let authorityLength = soa.map { ($0.originLength == 1 ? 1 : 2) + $0.soaLength } ?? 0
        let optLength = query.edns == nil ? 0 : optLength
        let total = query.questionEnd + answerLength + authorityLength + optLength
        let truncated = total > limit
        let flags = flags(query: query.flags, rcode: rcode, authoritative: true, truncated: truncated)
        let length = truncated ? query.questionEnd + optLength : total
        buffer.clear()
        // One bounds and uniqueness check for the whole response, then plain copies: this
        // is the path every query for a mirrored name takes.
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { out in
            guard let base = out.baseAddress, let question = packet.baseAddress else { return 0 }
            var writer = DNSRawWriter(base: base)
            writer.header(id: query.id, flags: flags, questions: 1, answers: truncated ? 0 : UInt16(truncatingIfNeeded: answerCount),
                          authorities: truncated || soa == nil ? 0 : 1, additionals: optLength == 0 ? 0 : 1)
            writer.copy(question + DNSLimits.headerSize, count: query.questionEnd - DNSLimits.headerSize)
            if !truncated {
                if let answers, answers.length > 0 { writer.copy(answers.start, count: answers.length) }
                if let soa, let arena = table.zoneArena.baseAddress {
                    // The SOA owner is the zone origin, a suffix of the question name.
                    if soa.originLength == 1 {
                        writer.u8(0)
                    } else {
                        writer.u16(UInt16(0xC000) | UInt16(DNSLimits.headerSize + query.nameLength - soa.originLength))
                    }
                    writer.copy(arena + soa.soaOffset, count: soa.soaLength)
                }
            }
            if let edns = query.edns { writer.opt(edns, rcode: rcode) }
            return writer.offset
        }
    }
}
