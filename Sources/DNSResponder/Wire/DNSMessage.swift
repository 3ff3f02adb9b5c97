/// A whole DNS message, parsed into sections.
///
/// This is the general, allocation-happy representation used to build the record table,
/// inspect forwarded answers in tests, and fuzz the parser. The per-query hot path reads
/// only what it needs straight from the received bytes (see ``DNSQueryView``).
public struct DNSMessage: Hashable, Sendable {
    public var header: DNSHeader
    public var questions: [DNSQuestion]
    public var answers: [DNSRecord]
    public var authorities: [DNSRecord]
    /// Additional records, OPT excluded (it is in ``edns``).
    public var additionals: [DNSRecord]
    public var edns: DNSEDNS?

    public init(header: DNSHeader, questions: [DNSQuestion] = [], answers: [DNSRecord] = [], authorities: [DNSRecord] = [],
                additionals: [DNSRecord] = [], edns: DNSEDNS? = nil) {
        self.header = header
        self.questions = questions
        self.answers = answers
        self.authorities = authorities
        self.additionals = additionals
        self.edns = edns
    }

    /// The full response code: header bits plus the EDNS extension.
    public var responseCode: DNSResponseCode {
        DNSResponseCode(rawValue: UInt16(edns?.extendedResponseCode ?? 0) << 4 | header.responseCode.rawValue)
    }

    /// Parses `bytes` as one complete message.
    ///
    /// Never traps and never allocates more than a small multiple of `bytes.count`: counts
    /// in the header are only trusted as far as the bytes go.
    /// - Throws: ``DNSWireError`` for anything malformed, including trailing bytes.
    public init(parsing bytes: [UInt8]) throws {
        self = try bytes.withUnsafeBytes { try DNSMessage(parsing: $0) }
    }

    /// Parses one complete message from raw memory; see ``init(parsing:)-([UInt8])``.
    public init(parsing bytes: UnsafeRawBufferPointer) throws {
        var reader = DNSWireReader(bytes)
        header = try reader.readHeader()
        questions = []
        for _ in 0..<header.questionCount {
            let name = try reader.readName("question name")
            questions.append(DNSQuestion(name: name, type: DNSRecordType(rawValue: try reader.readU16("question type")),
                                         class: DNSClass(rawValue: try reader.readU16("question class"))))
        }
        var edns: DNSEDNS? = nil
        answers = try Self.readRecords(count: header.answerCount, from: &reader, edns: &edns, allowOPT: false)
        authorities = try Self.readRecords(count: header.authorityCount, from: &reader, edns: &edns, allowOPT: false)
        additionals = try Self.readRecords(count: header.additionalCount, from: &reader, edns: &edns, allowOPT: true)
        self.edns = edns
        guard reader.remaining == 0 else { throw DNSWireError.trailingBytes(offset: reader.offset, count: reader.remaining) }
    }

    private static func readRecords(count: UInt16, from reader: inout DNSWireReader, edns: inout DNSEDNS?, allowOPT: Bool) throws -> [DNSRecord] {
        var records: [DNSRecord] = []
        for _ in 0..<count {
            let start = reader.offset
            let name = try reader.readName("record name")
            let type = DNSRecordType(rawValue: try reader.readU16("record type"))
            let rawClass = try reader.readU16("record class")
            let ttl = try reader.readU32("record TTL")
            let length = Int(try reader.readU16("record length"))
            if type == .opt {
                guard allowOPT, edns == nil, name.wire == [0] else { throw DNSWireError.badOPT(offset: start) }
                edns = try readOPT(rawClass: rawClass, ttl: ttl, length: length, from: &reader)
                continue
            }
            let data = try DNSRecordData.read(type: type, length: length, from: &reader)
            records.append(DNSRecord(name: name, class: DNSClass(rawValue: rawClass), ttl: ttl, data: data))
        }
        return records
    }

    private static func readOPT(rawClass: UInt16, ttl: UInt32, length: Int, from reader: inout DNSWireReader) throws -> DNSEDNS {
        let end = reader.offset + length
        guard end <= reader.bytes.count else { throw DNSWireError.truncated(field: "OPT data", offset: reader.offset) }
        var options: [DNSEDNSOption] = []
        while reader.offset < end {
            let code = try reader.readU16("OPT option code")
            let optionLength = Int(try reader.readU16("OPT option length"))
            guard reader.offset + optionLength <= end else { throw DNSWireError.badOPT(offset: reader.offset) }
            options.append(DNSEDNSOption(code: code, data: try reader.readBytes(optionLength, "OPT option")))
        }
        return DNSEDNS(udpPayloadSize: rawClass, extendedResponseCode: UInt8(ttl >> 24), version: UInt8((ttl >> 16) & 0xFF),
                       dnssecOK: ttl & 0x8000 != 0, options: options)
    }

    /// The message in wire form, with names compressed. Header counts are taken from the
    /// sections, not from ``header``.
    public func encoded() throws -> [UInt8] {
        var writer = DNSMessageWriter()
        var header = self.header
        guard questions.count <= 65535, answers.count <= 65535, authorities.count <= 65535, additionals.count < 65535 else {
            throw DNSWireError.messageTooLarge
        }
        header.questionCount = UInt16(questions.count)
        header.answerCount = UInt16(answers.count)
        header.authorityCount = UInt16(authorities.count)
        header.additionalCount = UInt16(additionals.count + (edns == nil ? 0 : 1))
        writer.append(header)
        for question in questions {
            try writer.append(question.name, compress: true)
            writer.append(question.type.rawValue)
            writer.append(question.class.rawValue)
        }
        for record in answers + authorities + additionals { try writer.append(record) }
        if let edns { writer.append(edns) }
        return writer.bytes
    }
}
