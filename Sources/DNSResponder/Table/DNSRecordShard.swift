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
/// order (so an ANY answer is one contiguous run), the companion list (only on a part's
/// head; never read by a query), padding.
final class DNSRecordShard: @unchecked Sendable {
    struct RecordHeader {
        var hash: UInt64
        var keyLength: UInt8
        var answerSetCount: UInt8
        var zone: Int16
        var labelCount: UInt8
        /// ``removedFlag`` on a record a builder replaced (merged into a later one).
        var flags: UInt8 = 0
        /// Bytes of the companion list after the answers (see ``DNSEncodedName/companions``).
        var companionLength: UInt16 = 0
    }

    /// Marks a superseded record in a run being built; shards never hold one.
    static let removedFlag: UInt8 = 1

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

        /// The companion list's bytes (see ``DNSEncodedName/companions``).
        var companions: UnsafeRawBufferPointer {
            let header = self.header
            let answers = allAnswers()
            return UnsafeRawBufferPointer(start: answers.start + answers.length, count: Int(header.companionLength))
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
    /// Bytes allocated for slots and records.
    var byteCount: Int { recordsEnd }
    /// Bit n set when some name has n labels.
    let depthBits: (UInt64, UInt64)
    /// The hashes (``NameHash``) of the last labels of its names (`local`, `arpa`, …).
    let topLabelHashes: Set<UInt64>

    /// A shard holding the live records of `run`: records laid out as described above, one
    /// after the other (as ``append(_:to:)`` and ``appendRecords(dropping:to:)`` write them);
    /// records flagged ``removedFlag`` are skipped. The bytes are copied, `run` may go.
    init(records run: UnsafeRawBufferPointer) {
        var live = 0
        var liveBytes = 0
        var offset = 0
        while offset < run.count {
            let size = Self.recordSize(in: run, at: offset)
            if run.loadUnaligned(fromByteOffset: offset, as: RecordHeader.self).flags & Self.removedFlag == 0 {
                live += 1
                liveBytes += size
            }
            offset += size
        }
        var capacity = 16
        while capacity < live * 2 { capacity <<= 1 }
        let recordsStart = capacity * MemoryLayout<UInt64>.stride
        memory = UnsafeMutableRawPointer.allocate(byteCount: recordsStart + max(liveBytes, 8), alignment: 8)
        memory.initializeMemory(as: UInt64.self, repeating: 0, count: capacity)
        let slots = memory.assumingMemoryBound(to: UInt64.self)
        var bits: (UInt64, UInt64) = (0, 0)
        var tops = Set<UInt64>()
        var target = recordsStart
        offset = 0
        while offset < run.count {
            let size = Self.recordSize(in: run, at: offset)
            let header = run.loadUnaligned(fromByteOffset: offset, as: RecordHeader.self)
            defer { offset += size }
            guard header.flags & Self.removedFlag == 0 else { continue }
            UnsafeMutableRawBufferPointer(start: memory + target, count: size).copyMemory(from: UnsafeRawBufferPointer(rebasing: run[offset..<offset + size]))
            let key = UnsafeRawBufferPointer(start: memory + target + Self.keyOffset(header), count: Int(header.keyLength))
            if let top = Self.topLabelHash(key) { tops.insert(top) }
            var slot = Int(truncatingIfNeeded: header.hash) & (capacity - 1)
            while slots[slot] != 0 { slot = (slot + 1) & (capacity - 1) }
            slots[slot] = (header.hash & 0xFFFF_FFFF_0000_0000) | UInt64(target)
            target += size
            let labels = Int(header.labelCount)
            if labels < 64 { bits.0 |= 1 << UInt64(labels) } else { bits.1 |= 1 << UInt64(min(labels, 127) - 64) }
        }
        self.recordsStart = recordsStart
        recordsEnd = target
        view = View(memory: UnsafeRawPointer(memory), slotMask: capacity - 1)
        count = live
        depthBits = bits
        topLabelHashes = tops
    }

    /// A shard holding the live records of `run`.
    static func make(_ run: [UInt8]) -> DNSRecordShard {
        run.withUnsafeBytes { DNSRecordShard(records: $0) }
    }

    /// The hash of the last label of a lower-cased wire name (length byte included); nil
    /// for the root.
    static func topLabelHash(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        var offset = 0
        var last: Int? = nil
        while offset < bytes.count, bytes[offset] != 0 {
            last = offset
            offset += Int(bytes[offset]) + 1
        }
        guard let last, offset < bytes.count else { return nil }
        return NameHash.hash(bytes, from: last, count: Int(bytes[last]) + 1)
    }

    deinit {
        memory.deallocate()
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

    /// Appends the bytes of every record whose key is not in `dropping` to `run`, as they
    /// are (no decoding: a patch copies an untouched name with one `memcpy`).
    func appendRecords(dropping: [[UInt8]], to run: inout [UInt8]) {
        let hashes = Set(dropping.map { key in key.withUnsafeBytes { NameHash.hash($0, from: 0, count: $0.count) } })
        run.reserveCapacity(run.count + recordsEnd - recordsStart)
        var offset = recordsStart
        while offset < recordsEnd {
            let base = UnsafeRawPointer(memory) + offset
            let size = Self.recordSize(in: UnsafeRawBufferPointer(start: base, count: recordsEnd - offset), at: 0)
            offset += size
            let header = base.load(as: RecordHeader.self)
            if hashes.contains(header.hash) {
                let key = UnsafeRawBufferPointer(start: base + Self.keyOffset(header), count: Int(header.keyLength))
                if dropping.contains(where: { $0.elementsEqual(key) }) { continue }
            }
            run.append(contentsOf: UnsafeRawBufferPointer(start: base, count: size))
        }
    }
}

/// A run of precomputed answer records in a shard: `length` bytes holding `count` records.
struct DNSAnswerRun {
    let start: UnsafeRawPointer
    let length: Int
    let count: Int
}
