/// Case-insensitive hashing and comparison of wire-form names straight from packet memory,
/// so a lookup needs neither a copy nor an allocation.
enum NameHash {
    /// FNV-1a over the ASCII-lower-cased bytes.
    @inline(__always)
    static func hash(_ bytes: UnsafeRawBufferPointer, from start: Int, count: Int) -> UInt64 {
        var value: UInt64 = 0xcbf2_9ce4_8422_2325
        var index = start
        let end = start + count
        while index < end {
            value ^= UInt64(DNSName.lowercase(bytes[index]))
            value &*= 0x0000_0100_0000_01B3
            index += 1
        }
        return value
    }

    /// Whether `count` bytes at `start` equal the already lower-cased `key` at `keyStart`.
    @inline(__always)
    static func equal(_ bytes: UnsafeRawBufferPointer, from start: Int, count: Int,
                      lowercasedKey key: UnsafeRawBufferPointer, keyStart: Int) -> Bool {
        var index = 0
        while index < count {
            if DNSName.lowercase(bytes[start + index]) != key[keyStart + index] { return false }
            index += 1
        }
        return true
    }
}
