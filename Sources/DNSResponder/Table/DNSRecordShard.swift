/// One name's precomputed answers, independent of where they are stored: what a shard is
/// built from, and what a patch copies unchanged from the old shard to the new one.
struct DNSEncodedName: Sendable {
    struct AnswerSet: Sendable {
        var type: UInt16
        var count: UInt16
        var bytes: [UInt8]
    }

    /// The lower-cased wire name.
    var key: [UInt8]
    var hash: UInt64
    var labelCount: Int
    /// Index into the table's zones, or -1.
    var zone: Int
    var answers: [AnswerSet]
}

/// A slice of a ``DNSRecordTable``: the names whose hash falls into it, with their answers,
/// in flat manually allocated memory (written once in `init`, freed in `deinit`), so reads
/// need no bounds-checked array access, closure or reference counting. Immutable after
/// `init`, hence `@unchecked Sendable`.
final class DNSRecordShard: @unchecked Sendable {
    /// One name, packed into 24 bytes (a table holds several per service).
    struct Entry: Sendable {
        let hash: UInt64
        private let storedKeyOffset: UInt32
        private let storedRRSetStart: UInt32
        private let storedKeyLength: UInt8
        private let storedRRSetCount: UInt8
        private let storedZone: Int16

        init(hash: UInt64, keyOffset: Int, keyLength: Int, rrsetStart: Int, rrsetCount: Int, zone: Int) {
            self.hash = hash
            storedKeyOffset = UInt32(truncatingIfNeeded: keyOffset)
            storedRRSetStart = UInt32(truncatingIfNeeded: rrsetStart)
            storedKeyLength = UInt8(truncatingIfNeeded: keyLength)
            storedRRSetCount = UInt8(truncatingIfNeeded: rrsetCount)
            storedZone = Int16(truncatingIfNeeded: zone)
        }

        var keyOffset: Int { Int(storedKeyOffset) }
        var keyLength: Int { Int(storedKeyLength) }
        var rrsetStart: Int { Int(storedRRSetStart) }
        var rrsetCount: Int { Int(storedRRSetCount) }
        /// Index into the table's zones, or -1 when no zone encloses the name.
        var zone: Int { Int(storedZone) }
    }

    /// The answers of one type at one name: `count` records, `length` bytes at `offset`.
    struct RRSet: Sendable {
        let type: UInt16
        let count: UInt16
        private let storedOffset: UInt32
        private let storedLength: UInt32

        init(type: UInt16, count: UInt16, offset: Int, length: Int) {
            self.type = type
            self.count = count
            storedOffset = UInt32(truncatingIfNeeded: offset)
            storedLength = UInt32(truncatingIfNeeded: length)
        }

        var offset: Int { Int(storedOffset) }
        var length: Int { Int(storedLength) }
    }

    /// Keys and answers.
    let arena: UnsafeRawBufferPointer
    let entries: UnsafeBufferPointer<Entry>
    let rrsets: UnsafeBufferPointer<RRSet>
    /// Open addressing: each slot is 0 (empty) or the upper 32 bits of the name's hash
    /// followed by entry index + 1, so probes rarely touch an entry that cannot match.
    private let slots: UnsafeBufferPointer<UInt64>
    private let slotMask: Int
    /// Bit n set when some entry has n labels.
    let depthBits: (UInt64, UInt64)

    init(_ names: [DNSEncodedName]) {
        var arena: [UInt8] = []
        var entries: [Entry] = []
        var rrsets: [RRSet] = []
        entries.reserveCapacity(names.count)
        var capacity = 16
        while capacity < names.count * 2 { capacity <<= 1 }
        var slots = [UInt64](repeating: 0, count: capacity)
        var bits: (UInt64, UInt64) = (0, 0)
        for name in names {
            let entry = Entry(hash: name.hash, keyOffset: arena.count, keyLength: name.key.count, rrsetStart: rrsets.count,
                              rrsetCount: name.answers.count, zone: name.zone)
            arena.append(contentsOf: name.key)
            for answer in name.answers {
                rrsets.append(RRSet(type: answer.type, count: answer.count, offset: arena.count, length: answer.bytes.count))
                arena.append(contentsOf: answer.bytes)
            }
            var slot = Int(truncatingIfNeeded: name.hash) & (capacity - 1)
            while slots[slot] != 0 { slot = (slot + 1) & (capacity - 1) }
            slots[slot] = (name.hash & 0xFFFF_FFFF_0000_0000) | UInt64(entries.count + 1)
            entries.append(entry)
            if name.labelCount < 64 { bits.0 |= 1 << UInt64(name.labelCount) } else { bits.1 |= 1 << UInt64(min(name.labelCount, 127) - 64) }
        }
        self.arena = Self.copy(arena)
        self.entries = Self.copy(entries)
        self.rrsets = Self.copy(rrsets)
        self.slots = Self.copy(slots)
        slotMask = capacity - 1
        depthBits = bits
    }

    deinit {
        arena.deallocate()
        entries.deallocate()
        rrsets.deallocate()
        slots.deallocate()
    }

    /// The entry for the name of `length` bytes at `start` in `packet` whose hash is `hash`.
    @inline(__always)
    func find(_ packet: UnsafeRawBufferPointer, start: Int, length: Int, hash: UInt64) -> Int? {
        var slot = Int(truncatingIfNeeded: hash) & slotMask
        let tag = hash & 0xFFFF_FFFF_0000_0000
        while true {
            let value = slots[slot]
            if value == 0 { return nil }
            if value & 0xFFFF_FFFF_0000_0000 == tag {
                let index = Int(value & 0xFFFF_FFFF) - 1
                let entry = entries[index]
                if entry.hash == hash, entry.keyLength == length,
                   NameHash.equal(packet, from: start, count: length, lowercasedKey: arena, keyStart: entry.keyOffset) {
                    return index
                }
            }
            slot = (slot + 1) & slotMask
        }
    }

    /// The position in `rrsets` of the answer set of `type` at entry `index`, if any.
    @inline(__always)
    func rrsetPosition(at index: Int, type: UInt16) -> Int? {
        let entry = entries[index]
        var position = entry.rrsetStart
        let end = position + entry.rrsetCount
        while position < end {
            if rrsets[position].type == type { return position }
            position += 1
        }
        return nil
    }

    /// Every name as it was encoded, except those whose key is in `dropping`.
    func encodedNames(dropping: Set<[UInt8]>) -> [DNSEncodedName] {
        var names: [DNSEncodedName] = []
        names.reserveCapacity(entries.count)
        for entry in entries {
            let key = Array(arena[entry.keyOffset..<(entry.keyOffset + entry.keyLength)])
            if dropping.contains(key) { continue }
            let answers = (entry.rrsetStart..<(entry.rrsetStart + entry.rrsetCount)).map { position in
                let set = rrsets[position]
                return DNSEncodedName.AnswerSet(type: set.type, count: set.count, bytes: Array(arena[set.offset..<(set.offset + set.length)]))
            }
            var labels = 0
            var offset = 0
            while key[offset] != 0 {
                labels += 1
                offset += Int(key[offset]) + 1
            }
            names.append(DNSEncodedName(key: key, hash: entry.hash, labelCount: labels, zone: entry.zone, answers: answers))
        }
        return names
    }

    private static func copy<Element>(_ array: [Element]) -> UnsafeBufferPointer<Element> {
        let buffer = UnsafeMutableBufferPointer<Element>.allocate(capacity: max(array.count, 1))
        _ = buffer.initialize(from: array)
        return UnsafeBufferPointer(rebasing: buffer[0..<array.count])
    }

    private static func copy(_ bytes: [UInt8]) -> UnsafeRawBufferPointer {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
        buffer.copyBytes(from: bytes)
        return UnsafeRawBufferPointer(rebasing: buffer[0..<bytes.count])
    }
}
