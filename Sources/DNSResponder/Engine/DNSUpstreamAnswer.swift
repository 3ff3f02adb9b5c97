/// An upstream's answer, checked against the question we sent and reduced to what can be
/// cached and replayed to any client: the message without its OPT record, where each TTL
/// sits, and how long it may be kept.
struct DNSUpstreamAnswer: Sendable {
    /// The whole message (header included) minus OPT; the additional count is adjusted.
    var bytes: [UInt8]
    /// Byte offsets of every record's TTL, to age them on replay.
    var ttlOffsets: [Int]
    /// How long the answer may be cached: the smallest record TTL, or for negative answers
    /// the SOA's negative TTL capped at ``maximumNegativeTTL``; 0 means do not cache.
    var cacheTTL: UInt32
    /// The flags word the upstream sent.
    var flags: UInt16

    static let maximumNegativeTTL: UInt32 = 5

    /// What an upstream reply amounted to.
    enum Outcome {
        case answer(DNSUpstreamAnswer)
        /// TC was set: ask again over TCP.
        case truncated
        /// Not an answer to our question (wrong ID or question): keep waiting.
        case unrelated
        /// An answer that says this upstream cannot help (SERVFAIL, REFUSED, …) or is malformed,
        /// or the exchange failed (connection refused, socket error).
        case failed(String)
        /// Nothing usable came back within the timeout.
        case timedOut(String)
    }

    /// Checks `packet` against the `id` and `question` (name, type, class in wire form) of
    /// the query we sent.
    static func check(_ packet: UnsafeRawBufferPointer, id: UInt16, question: [UInt8], maximumTTL: UInt32) -> Outcome {
        guard packet.count >= DNSLimits.headerSize + question.count else { return .unrelated }
        let flags = UInt16(packet[2]) << 8 | UInt16(packet[3])
        guard UInt16(packet[0]) << 8 | UInt16(packet[1]) == id, flags & DNSHeader.qrBit != 0,
              packet[4] == 0, packet[5] == 1 else { return .unrelated }
        guard question.withUnsafeBytes({ caseInsensitiveEqual(packet, $0) }) else { return .unrelated }
        if flags & DNSHeader.tcBit != 0 { return .truncated }
        let rcode = flags & 0xF
        guard rcode == DNSResponseCode.noError.rawValue || rcode == DNSResponseCode.nameError.rawValue else {
            return .failed("upstream answered \(DNSResponseCode(rawValue: rcode))")
        }

        var reader = DNSWireReader(packet, offset: DNSLimits.headerSize + question.count)
        let answerCount = Int(packet[6]) << 8 | Int(packet[7])
        let authorityCount = Int(packet[8]) << 8 | Int(packet[9])
        let additionalCount = Int(packet[10]) << 8 | Int(packet[11])
        var ttlOffsets: [Int] = []
        var minimumTTL = UInt32.max
        var negativeTTL: UInt32? = nil
        var optRange: Range<Int>? = nil
        do {
            for index in 0..<(answerCount + authorityCount + additionalCount) {
                let start = reader.offset
                guard optRange == nil else { return .failed("OPT is not the last record") }
                try reader.skipName("record name")
                let type = try reader.readU16("record type")
                _ = try reader.readU16("record class")
                let ttlOffset = reader.offset
                let ttl = try reader.readU32("record TTL")
                let length = Int(try reader.readU16("record length"))
                try reader.skip(length, "record data")
                if type == DNSRecordType.opt.rawValue {
                    guard index >= answerCount + authorityCount, ttl >> 24 == 0 else { return .failed("bad OPT or extended rcode") }
                    optRange = start..<reader.offset
                    continue
                }
                ttlOffsets.append(ttlOffset)
                minimumTTL = min(minimumTTL, ttl & 0x7FFF_FFFF)
                if type == DNSRecordType.soa.rawValue, index >= answerCount, index < answerCount + authorityCount, length >= 22 {
                    let end = reader.offset
                    let soaMinimum = UInt32(packet[end - 4]) << 24 | UInt32(packet[end - 3]) << 16 | UInt32(packet[end - 2]) << 8 | UInt32(packet[end - 1])
                    negativeTTL = min(ttl, soaMinimum)
                }
            }
        } catch {
            return .failed("malformed answer: \(error)")
        }
        guard reader.remaining == 0 else { return .failed("trailing bytes in answer") }

        var bytes: [UInt8]
        if let optRange {
            bytes = Array(packet[0..<optRange.lowerBound])
            let count = additionalCount - 1
            bytes[10] = UInt8(count >> 8)
            bytes[11] = UInt8(count & 0xFF)
        } else {
            bytes = Array(packet)
        }
        let cacheTTL: UInt32
        if rcode == DNSResponseCode.nameError.rawValue || answerCount == 0 {
            cacheTTL = min(negativeTTL ?? 0, maximumNegativeTTL)
        } else {
            cacheTTL = minimumTTL == .max ? 0 : min(minimumTTL, maximumTTL)
        }
        return .answer(DNSUpstreamAnswer(bytes: bytes, ttlOffsets: ttlOffsets, cacheTTL: cacheTTL, flags: flags))
    }

    private static func caseInsensitiveEqual(_ packet: UnsafeRawBufferPointer, _ wanted: UnsafeRawBufferPointer) -> Bool {
        for index in 0..<wanted.count where DNSName.lowercase(packet[DNSLimits.headerSize + index]) != DNSName.lowercase(wanted[index]) {
            return false
        }
        return true
    }
}
