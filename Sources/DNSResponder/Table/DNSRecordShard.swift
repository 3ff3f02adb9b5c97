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
/// in one block of manually allocated memory (written once in `init`, freed in `deinit`).
/// Immutable after `init`, hence `@unchecked Sendable`.
///
/// Why one block: a query for a mirrored name is answered in a few hundred instructions,
/// so what it costs is mostly cache and TLB misses. The block holds the hash slots and then
/// one record per name, each with its header, answer-set descriptors, key and answer bytes
/// side by side, so a lookup touches one slot and then one record, usually one or two cache
/// lines, instead of chasing separate entry, key, descriptor and answer arrays.
///
/// Record layout (8-byte aligned): ``RecordHeader`` (16 bytes), `answerSetCount` ×
/// ``AnswerSetDescriptor`` (8 bytes each), the key, the answer sets' bytes in descriptor
/// order (so an ANY answer is one contiguous run), padding.
final class DNSRecordShard: @unchecked Sendable {
    struct RecordHeader {
        var hash: UInt64
        var keyLength: UInt8
        var answerSetCount: UInt8
        var zone: Int16
        var labelCount: UInt8
        var padding: (UInt8, UInt8, UInt8) = (0, 0, 0)
    }

    struct AnswerSetDescriptor {
        var type: UInt16
        var count: UInt16
        var length: UInt32
    }

    /// Where a found name's record starts; valid while its table is alive.
    struct Record {
        let base: UnsafeRawPointer

        @inline(__always)
        var header: RecordHeader { base.load(as: RecordHeader.self) }

        /// Index into the table's zones, or -1 when no zone encloses the name.
        @inline(__always)
        var zone: Int { Int(header.zone) }

        /// The answer set of `type` (or, failing that, of CNAME), or an empty run.
        @inline(__always)
        func answers(type: UInt16) -> DNSAnswerRun {
            let header = self.header
            let descriptors = base + MemoryLayout<RecordHeader>.stride
            var bytes = descriptors + Int(header.answerSetCount) * MemoryLayout<AnswerSetDescriptor>.stride + Int(header.keyLength)
            var cname: DNSAnswerRun? = nil
            for index in 0..<Int(header.answerSetCount) {
                let set = descriptors.load(fromByteOffset: index * MemoryLayout<AnswerSetDescriptor>.stride, as: AnswerSetDescriptor.self)
                if set.type == type { return DNSAnswerRun(start: bytes, length: Int(set.length), count: Int(set.count)) }
                if set.type == DNSRecordType.cname.rawValue {
                    cname = DNSAnswerRun(start: bytes, length: Int(set.length), count: Int(set.count))
                }
                bytes += Int(set.length)
            }
            return cname ?? DNSAnswerRun(start: bytes, length: 0, count: 0)
        }

        /// Every answer set, one after the other (for ANY).
        @inline(__always)
        func allAnswers() -> DNSAnswerRun {
            let header = self.header
            let descriptors = base + MemoryLayout<RecordHeader>.stride
            var length = 0
            var count = 0
            for index in 0..<Int(header.answerSetCount) {
                let set = descriptors.load(fromByteOffset: index * MemoryLayout<AnswerSetDescriptor>.stride, as: AnswerSetDescriptor.self)
                length += Int(set.length)
                count += Int(set.count)
            }
            let bytes = descriptors + Int(header.answerSetCount) * MemoryLayout<AnswerSetDescriptor>.stride + Int(header.keyLength)
            return DNSAnswerRun(start: bytes, length: length, count: count)
        }
    }

    /// Slots, then records.
    private let memory: UnsafeMutableRawPointer
    /// What a lookup needs, copied into the table's flat directory so a query does not
    /// have to load the shard object first.
    let view: View
    private let recordsStart: Int
    private let recordsEnd: Int
    /// How many names the shard holds.
    let count: Int
    /// Bit n set when some name has n labels.
    let depthBits: (UInt64, UInt64)
    /// The hashes (``NameHash``) of the last labels of its names (`local`, `arpa`, …).
    let topLabelHashes: Set<UInt64>

    init(_ names: [DNSEncodedName]) {
        var capacity = 16
        while capacity < names.count * 2 { capacity <<= 1 }
        var size = capacity * MemoryLayout<UInt64>.stride
        let recordsStart = size
        for name in names { size += Self.recordSize(name) }
        memory = UnsafeMutableRawPointer.allocate(byteCount: max(size, 8), alignment: 8)
        memory.initializeMemory(as: UInt64.self, repeating: 0, count: capacity)
        let slots = memory.assumingMemoryBound(to: UInt64.self)
        var offset = recordsStart
        var bits: (UInt64, UInt64) = (0, 0)
        var tops = Set<UInt64>()
        for name in names {
            if let top = Self.topLabelHash(name.key) { tops.insert(top) }
            var slot = Int(truncatingIfNeeded: name.hash) & (capacity - 1)
            while slots[slot] != 0 { slot = (slot + 1) & (capacity - 1) }
            slots[slot] = (name.hash & 0xFFFF_FFFF_0000_0000) | UInt64(offset)
            offset += Self.write(name, at: memory + offset)
            if name.labelCount < 64 { bits.0 |= 1 << UInt64(name.labelCount) } else { bits.1 |= 1 << UInt64(min(name.labelCount, 127) - 64) }
        }
        self.recordsStart = recordsStart
        recordsEnd = offset
        view = View(memory: UnsafeRawPointer(memory), slotMask: capacity - 1)
        count = names.count
        depthBits = bits
        topLabelHashes = tops
    }

    /// The hash of the last label of a lower-cased wire name (length byte included); nil
    /// for the root.
    static func topLabelHash(_ key: [UInt8]) -> UInt64? {
        key.withUnsafeBytes { bytes in
            var offset = 0
            var last: Int? = nil
            while offset < bytes.count, bytes[offset] != 0 {
                last = offset
                offset += Int(bytes[offset]) + 1
            }
            guard let last, offset < bytes.count else { return nil }
            return NameHash.hash(bytes, from: last, count: Int(bytes[last]) + 1)
        }
    }

    deinit {
        memory.deallocate()
    }

    private static func recordSize(_ name: DNSEncodedName) -> Int {
        let size = MemoryLayout<RecordHeader>.stride + name.answers.count * MemoryLayout<AnswerSetDescriptor>.stride + name.key.count
            + name.answers.reduce(0) { $0 + $1.bytes.count }
        return (size + 7) & ~7
    }

    /// Writes one record; returns its size.
    private static func write(_ name: DNSEncodedName, at base: UnsafeMutableRawPointer) -> Int {
        base.storeBytes(of: RecordHeader(hash: name.hash, keyLength: UInt8(truncatingIfNeeded: name.key.count),
                                         answerSetCount: UInt8(truncatingIfNeeded: name.answers.count),
                                         zone: Int16(truncatingIfNeeded: name.zone), labelCount: UInt8(truncatingIfNeeded: name.labelCount)),
                        as: RecordHeader.self)
        var position = MemoryLayout<RecordHeader>.stride
        for set in name.answers {
            base.storeBytes(of: AnswerSetDescriptor(type: set.type, count: set.count, length: UInt32(truncatingIfNeeded: set.bytes.count)),
                            toByteOffset: position, as: AnswerSetDescriptor.self)
            position += MemoryLayout<AnswerSetDescriptor>.stride
        }
        name.key.withUnsafeBytes { (base + position).copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(base), byteCount: $0.count) }
        position += name.key.count
        for set in name.answers {
            set.bytes.withUnsafeBytes { (base + position).copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(base), byteCount: $0.count) }
            position += set.bytes.count
        }
        let size = recordSize(name)
        if size > position { (base + position).initializeMemory(as: UInt8.self, repeating: 0, count: size - position) }
        return size
    }

        /// The record of the name of `length` bytes at `start` in `packet` whose hash is `hash`.
    @inline(__always)
    func find(_ packet: UnsafeRawBufferPointer, start: Int, length: Int, hash: UInt64) -> Record? {
        view.find(packet, start: start, length: length, hash: hash)
    }

    /// A shard's hash slots and records, as plain pointers; valid while the shard lives.
    struct View {
        let memory: UnsafeRawPointer
        let slotMask: Int

        /// Open addressing: each slot is 0 (empty) or the upper 32 bits of the name's hash
        /// followed by the record's byte offset in `memory`, so probes rarely touch a record
        /// that cannot match.
        @inline(__always)
        func find(_ packet: UnsafeRawBufferPointer, start: Int, length: Int, hash: UInt64) -> Record? {
            let slots = memory.assumingMemoryBound(to: UInt64.self)
            var slot = Int(truncatingIfNeeded: hash) & slotMask
            let tag = hash & 0xFFFF_FFFF_0000_0000
            while true {
                let value = slots[slot]
                if value == 0 { return nil }
                if value & 0xFFFF_FFFF_0000_0000 == tag {
                    let record = memory + Int(value & 0xFFFF_FFFF)
                    let header = record.load(as: RecordHeader.self)
                    if header.hash == hash, Int(header.keyLength) == length {
                        let key = record + MemoryLayout<RecordHeader>.stride + Int(header.answerSetCount) * MemoryLayout<AnswerSetDescriptor>.stride
                        if NameHash.equal(packet, from: start, count: length, lowercasedKey: UnsafeRawBufferPointer(start: key, count: length), keyStart: 0) {
                            return Record(base: record)
                        }
                    }
                }
                slot = (slot + 1) & slotMask
            }
        }
    }

    /// Every name as it was encoded, except those whose key is in `dropping`.
    func encodedNames(dropping: Set<[UInt8]>) -> [DNSEncodedName] {
        var names: [DNSEncodedName] = []
        names.reserveCapacity(count)
        var offset = recordsStart
        while offset < recordsEnd {
            let base = UnsafeRawPointer(memory) + offset
            let header = base.load(as: RecordHeader.self)
            var position = MemoryLayout<RecordHeader>.stride
            var descriptors: [AnswerSetDescriptor] = []
            for _ in 0..<Int(header.answerSetCount) {
                descriptors.append(base.load(fromByteOffset: position, as: AnswerSetDescriptor.self))
                position += MemoryLayout<AnswerSetDescriptor>.stride
            }
            let key = Array(UnsafeRawBufferPointer(start: base + position, count: Int(header.keyLength)))
            position += key.count
            var answers: [DNSEncodedName.AnswerSet] = []
            for set in descriptors {
                answers.append(DNSEncodedName.AnswerSet(type: set.type, count: set.count,
                                                        bytes: Array(UnsafeRawBufferPointer(start: base + position, count: Int(set.length)))))
                position += Int(set.length)
            }
            let name = DNSEncodedName(key: key, hash: header.hash, labelCount: Int(header.labelCount), zone: Int(header.zone), answers: answers)
            offset += Self.recordSize(name)
            if !dropping.contains(key) { names.append(name) }
        }
        return names
    }
}

/// A run of precomputed answer records in a shard: `length` bytes holding `count` records.
struct DNSAnswerRun {
    let start: UnsafeRawPointer
    let length: Int
    let count: Int

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: start, count: length) }
}
