/// Big-endian stores into memory the caller has already sized for the whole message, for
/// the two responses built once per query (table answers and cache hits): inside one
/// `ByteBuffer.writeWithUnsafeMutableBytes`, so the buffer's bounds and uniqueness are
/// checked once rather than once per field.
struct DNSRawWriter {
    let base: UnsafeMutableRawPointer
    /// Bytes written so far.
    private(set) var offset = 0

    init(base: UnsafeMutableRawPointer) {
        self.base = base
    }

    @inline(__always)
    mutating func u8(_ value: UInt8) {
        base.storeBytes(of: value, toByteOffset: offset, as: UInt8.self)
        offset += 1
    }

    @inline(__always)
    mutating func u16(_ value: UInt16) {
        base.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
        offset += 2
    }

    @inline(__always)
    mutating func copy(_ source: UnsafeRawPointer, count: Int) {
        (base + offset).copyMemory(from: source, byteCount: count)
        offset += count
    }

    /// The 12-byte header.
    @inline(__always)
    mutating func header(id: UInt16, flags: UInt16, questions: UInt16, answers: UInt16, authorities: UInt16, additionals: UInt16) {
        u16(id)
        u16(flags)
        u16(questions)
        u16(answers)
        u16(authorities)
        u16(additionals)
    }

    /// Our OPT record (``DNSResponseWriter/optLength`` bytes): root owner, 1232-byte
    /// payload, `rcode`'s upper bits, version 0, DO echoed (RFC 3225).
    @inline(__always)
    mutating func opt(_ edns: DNSQueryView.EDNSSummary, rcode: DNSResponseCode) {
        u8(0)
        u16(DNSRecordType.opt.rawValue)
        u16(UInt16(DNSLimits.advertisedUDPSize))
        u8(UInt8(truncatingIfNeeded: rcode.rawValue >> 4))
        u8(0)
        u16(edns.dnssecOK ? 0x8000 : 0)
        u16(0)
    }
}
