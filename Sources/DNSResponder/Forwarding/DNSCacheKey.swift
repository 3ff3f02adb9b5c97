/// The cache key of a forwarded question: the name lower-cased, type, class, and one byte
/// for the DO and CD bits (answers differ with them).
///
/// The key is hashed and compared straight from the received packet, so a cache hit costs
/// no allocation; the key bytes are only materialised when an answer is stored.
enum DNSCacheKey {
    /// The flag byte: bit 0 DO, bit 1 CD.
    @inline(__always)
    static func flagByte(_ query: DNSQueryView) -> UInt8 {
        UInt8((query.edns?.dnssecOK ?? false) ? 1 : 0) | UInt8(query.flags & DNSHeader.cdBit != 0 ? 2 : 0)
    }

    /// FNV-1a of the key as it would be materialised by ``bytes(_:query:)``.
    @inline(__always)
    static func hash(_ packet: UnsafeRawBufferPointer, query: DNSQueryView) -> UInt64 {
        var value = NameHash.hash(packet, from: DNSLimits.headerSize, count: query.nameLength)
        var index = DNSLimits.headerSize + query.nameLength
        while index < query.questionEnd {
            value ^= UInt64(packet[index])
            value &*= 0x0000_0100_0000_01B3
            index += 1
        }
        value ^= UInt64(flagByte(query))
        value &*= 0x0000_0100_0000_01B3
        return value
    }

    /// The key bytes, for storing.
    static func bytes(_ packet: UnsafeRawBufferPointer, query: DNSQueryView) -> [UInt8] {
        var key = Array(packet[DNSLimits.headerSize..<query.questionEnd])
        for index in 0..<query.nameLength { key[index] = DNSName.lowercase(key[index]) }
        key.append(flagByte(query))
        return key
    }

    /// Whether the question in `packet` has exactly the stored `key`.
    @inline(__always)
    static func matches(_ packet: UnsafeRawBufferPointer, query: DNSQueryView, key: [UInt8]) -> Bool {
        key.withUnsafeBytes { matches(packet, query: query, key: $0) }
    }

    @inline(__always)
    static func matches(_ packet: UnsafeRawBufferPointer, query: DNSQueryView, key stored: UnsafeRawBufferPointer) -> Bool {
        guard stored.count == query.questionEnd - DNSLimits.headerSize + 1 else { return false }
        guard NameHash.equal(packet, from: DNSLimits.headerSize, count: query.nameLength, lowercasedKey: stored, keyStart: 0) else { return false }
        var index = query.nameLength
        while index < query.questionEnd - DNSLimits.headerSize {
            if stored[index] != packet[DNSLimits.headerSize + index] { return false }
            index += 1
        }
        return stored[index] == flagByte(query)
    }
}
