/// What the responder needs from an incoming query, read in place from the packet without
/// copying or allocating.
///
/// The question is checked strictly (one question, uncompressed name within limits); the
/// other sections are walked with the same bounds checks as the full parser, only to find
/// the OPT record and to reject malformed messages.
struct DNSQueryView {
    var id: UInt16
    var flags: UInt16
    /// Wire length of the question name, which starts at byte 12.
    var nameLength: Int
    var labelCount: Int
    var type: UInt16
    var `class`: UInt16
    /// EDNS from the OPT record, if the query had one.
    var edns: EDNSSummary?

    /// The byte just after the question section.
    var questionEnd: Int { DNSLimits.headerSize + nameLength + 4 }

    struct EDNSSummary {
        var udpPayloadSize: UInt16
        var version: UInt8
        var dnssecOK: Bool
    }

    /// How a packet is to be handled before any lookup.
    enum Outcome {
        case query(DNSQueryView)
        /// Answer with this rcode and no question (the question itself was unreadable, or
        /// the header asks for something unsupported).
        case headerOnly(id: UInt16, flags: UInt16, rcode: DNSResponseCode)
        /// Answer FORMERR, echoing the readable question.
        case formatError(DNSQueryView)
        /// Not worth an answer: too short to carry an ID, or itself a response.
        case drop
    }

    /// Reads the packet. Never traps on any input.
    static func read(_ packet: UnsafeRawBufferPointer) -> Outcome {
        guard packet.count >= DNSLimits.headerSize else { return .drop }
        let id = UInt16(packet[0]) << 8 | UInt16(packet[1])
        let flags = UInt16(packet[2]) << 8 | UInt16(packet[3])
        if flags & DNSHeader.qrBit != 0 { return .drop }
        if (flags >> 11) & 0xF != 0 { return .headerOnly(id: id, flags: flags, rcode: .notImplemented) }
        let questionCount = UInt16(packet[4]) << 8 | UInt16(packet[5])
        guard questionCount == 1 else { return .headerOnly(id: id, flags: flags, rcode: .formatError) }

        // The question name: plain labels only.
        var position = DNSLimits.headerSize
        var labels = 0
        while true {
            guard position < packet.count else { return .headerOnly(id: id, flags: flags, rcode: .formatError) }
            let length = Int(packet[position])
            if length == 0 { break }
            guard length <= DNSLimits.maxLabelLength else { return .headerOnly(id: id, flags: flags, rcode: .formatError) }
            position += length + 1
            labels += 1
            guard position - DNSLimits.headerSize < DNSLimits.maxNameLength else { return .headerOnly(id: id, flags: flags, rcode: .formatError) }
        }
        let nameLength = position + 1 - DNSLimits.headerSize
        guard position + 5 <= packet.count else { return .headerOnly(id: id, flags: flags, rcode: .formatError) }
        var view = DNSQueryView(id: id, flags: flags, nameLength: nameLength, labelCount: labels,
                                type: UInt16(packet[position + 1]) << 8 | UInt16(packet[position + 2]),
                                class: UInt16(packet[position + 3]) << 8 | UInt16(packet[position + 4]), edns: nil)

        // The other sections: only OPT matters, but everything must be well formed.
        let answerCount = Int(packet[6]) << 8 | Int(packet[7])
        let authorityCount = Int(packet[8]) << 8 | Int(packet[9])
        let additionalCount = Int(packet[10]) << 8 | Int(packet[11])
        if answerCount == 0, authorityCount == 0, additionalCount == 0 {
            return packet.count == view.questionEnd ? .query(view) : .formatError(view)
        }
        var reader = DNSWireReader(packet, offset: view.questionEnd)
        do {
            for index in 0..<(answerCount + authorityCount + additionalCount) {
                let start = reader.offset
                try reader.skipName("record name")
                let type = try reader.readU16("record type")
                let rclass = try reader.readU16("record class")
                let ttl = try reader.readU32("record TTL")
                let length = Int(try reader.readU16("record length"))
                try reader.skip(length, "record data")
                if type == DNSRecordType.opt.rawValue {
                    guard index >= answerCount + authorityCount, view.edns == nil, packet[start] == 0 else { return .formatError(view) }
                    view.edns = EDNSSummary(udpPayloadSize: rclass, version: UInt8((ttl >> 16) & 0xFF), dnssecOK: ttl & 0x8000 != 0)
                    // Option syntax: a sequence of code/length/data that fills the record exactly.
                    var option = start + 11
                    while option < reader.offset {
                        guard option + 4 <= reader.offset else { return .formatError(view) }
                        option += 4 + (Int(packet[option + 2]) << 8 | Int(packet[option + 3]))
                    }
                    guard option == reader.offset else { return .formatError(view) }
                }
            }
        } catch {
            return .formatError(view)
        }
        return reader.remaining == 0 ? .query(view) : .formatError(view)
    }
}
