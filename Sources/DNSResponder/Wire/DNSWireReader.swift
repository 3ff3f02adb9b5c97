/// Bounds-checked reading of one DNS message held in memory.
///
/// Every read checks the remaining length first and throws ``DNSWireError`` instead of
/// trapping, so hostile input can never crash the process. Name decompression only follows
/// pointers that go strictly backwards, to a position before the previous pointer's
/// target, so it always terminates; the 255-byte name limit bounds the work per name.
struct DNSWireReader {
    let bytes: UnsafeRawBufferPointer
    var offset: Int

    init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    mutating func readU8(_ field: String) throws -> UInt8 {
        guard offset < bytes.count else { throw DNSWireError.truncated(field: field, offset: offset) }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func readU16(_ field: String) throws -> UInt16 {
        guard offset + 2 <= bytes.count else { throw DNSWireError.truncated(field: field, offset: offset) }
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    mutating func readU32(_ field: String) throws -> UInt32 {
        guard offset + 4 <= bytes.count else { throw DNSWireError.truncated(field: field, offset: offset) }
        defer { offset += 4 }
        return UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    mutating func readBytes(_ count: Int, _ field: String) throws -> [UInt8] {
        guard count >= 0, offset + count <= bytes.count else { throw DNSWireError.truncated(field: field, offset: offset) }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    mutating func skip(_ count: Int, _ field: String) throws {
        guard count >= 0, offset + count <= bytes.count else { throw DNSWireError.truncated(field: field, offset: offset) }
        offset += count
    }

    mutating func readHeader() throws -> DNSHeader {
        guard remaining >= DNSLimits.headerSize else { throw DNSWireError.truncated(field: "header", offset: offset) }
        return DNSHeader(id: try readU16("header"), flags: try readU16("header"), questionCount: try readU16("header"),
                         answerCount: try readU16("header"), authorityCount: try readU16("header"),
                         additionalCount: try readU16("header"))
    }

    /// Reads a possibly compressed name and returns its uncompressed wire form.
    mutating func readName(_ field: String) throws -> DNSName {
        var wire: [UInt8] = []
        try walkName(field, collect: true, into: &wire)
        return DNSName(uncheckedWire: wire)
    }

    /// Moves past a name, validating it exactly as ``readName(_:)`` does.
    mutating func skipName(_ field: String) throws {
        var unused: [UInt8] = []
        try walkName(field, collect: false, into: &unused)
    }

    private mutating func walkName(_ field: String, collect: Bool, into wire: inout [UInt8]) throws {
        let start = offset
        var position = offset
        var end: Int? = nil
        var length = 0
        var pointerLimit = offset
        while true {
            guard position < bytes.count else { throw DNSWireError.truncated(field: field, offset: position) }
            let lengthByte = bytes[position]
            switch lengthByte & DNSLimits.pointerMask {
            case 0:
                let labelLength = Int(lengthByte)
                length += labelLength + 1
                guard length <= DNSLimits.maxNameLength else { throw DNSWireError.nameTooLong(offset: start) }
                guard position + 1 + labelLength <= bytes.count else { throw DNSWireError.truncated(field: field, offset: position) }
                if collect { wire.append(contentsOf: bytes[position..<(position + 1 + labelLength)]) }
                position += 1 + labelLength
                if labelLength == 0 {
                    offset = end ?? position
                    return
                }
            case DNSLimits.pointerMask:
                guard position + 2 <= bytes.count else { throw DNSWireError.truncated(field: field, offset: position) }
                let target = Int(lengthByte & 0x3F) << 8 | Int(bytes[position + 1])
                guard target < pointerLimit else { throw DNSWireError.badPointer(offset: position, target: target) }
                if end == nil { end = position + 2 }
                pointerLimit = target
                position = target
            default:
                throw DNSWireError.badLabelType(offset: position)
            }
        }
    }
}
