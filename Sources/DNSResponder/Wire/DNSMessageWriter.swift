/// Builds a DNS message in wire form, compressing names against those already written.
///
/// Compression remembers every suffix of every name written with compression on, so a
/// later name reuses the longest known suffix (RFC 1035 §4.1.4). Only offsets below 0x4000
/// can be pointed at.
public struct DNSMessageWriter: Sendable {
    public private(set) var bytes: [UInt8]
    private var suffixOffsets: [DNSName: Int] = [:]

    public init(capacity: Int = 512) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func append(_ value: UInt8) { bytes.append(value) }

    public mutating func append(_ value: UInt16) {
        bytes.append(UInt8(value >> 8))
        bytes.append(UInt8(value & 0xFF))
    }

    public mutating func append(_ value: UInt32) {
        append(UInt16(value >> 16))
        append(UInt16(value & 0xFFFF))
    }

    public mutating func append(_ values: [UInt8]) { bytes.append(contentsOf: values) }

    public mutating func append(_ header: DNSHeader) {
        for value in [header.id, header.flags, header.questionCount, header.answerCount, header.authorityCount, header.additionalCount] {
            append(value)
        }
    }

    /// Writes `name`, ending in a pointer to an earlier copy of its longest known suffix
    /// when `compress` is true. Every suffix written here becomes a compression target.
    public mutating func append(_ name: DNSName, compress: Bool) throws {
        var suffix = name
        while suffix.wire.count > 1 {
            if compress, let target = suffixOffsets[suffix] {
                append(UInt16(0xC000) | UInt16(target))
                return
            }
            if bytes.count < 0x4000, suffixOffsets[suffix] == nil { suffixOffsets[suffix] = bytes.count }
            let labelLength = Int(suffix.wire[0])
            bytes.append(contentsOf: suffix.wire[0...labelLength])
            guard let parent = suffix.parent else { break }
            suffix = parent
        }
        bytes.append(0)
        guard bytes.count <= 65535 else { throw DNSWireError.messageTooLarge }
    }

    /// Writes a record with its length-prefixed data.
    public mutating func append(_ record: DNSRecord) throws {
        try append(record.name, compress: true)
        append(record.type.rawValue)
        append(record.class.rawValue)
        append(record.ttl)
        let lengthOffset = bytes.count
        append(UInt16(0))
        try record.data.write(to: &self)
        let length = bytes.count - lengthOffset - 2
        guard length <= 65535, bytes.count <= 65535 else { throw DNSWireError.messageTooLarge }
        bytes[lengthOffset] = UInt8(length >> 8)
        bytes[lengthOffset + 1] = UInt8(length & 0xFF)
    }

    /// Writes an OPT pseudo-record for `edns`.
    public mutating func append(_ edns: DNSEDNS) {
        bytes.append(0)
        append(DNSRecordType.opt.rawValue)
        append(edns.udpPayloadSize)
        append(edns.extendedResponseCode)
        append(edns.version)
        append(UInt16(edns.dnssecOK ? 0x8000 : 0))
        append(UInt16(edns.options.reduce(0) { $0 + 4 + $1.data.count }))
        for option in edns.options {
            append(option.code)
            append(UInt16(option.data.count))
            append(option.data)
        }
    }
}
