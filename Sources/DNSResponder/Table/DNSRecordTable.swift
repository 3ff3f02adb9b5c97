/// The names this responder answers itself, with every answer precomputed in wire form.
///
/// Built once from a ``DNSTableContent`` and then immutable, so any number of event loops
/// read it without locks; an update builds a new table and swaps it in (see
/// ``DNSServer/replaceTable(_:)``). All keys, answers and SOA records live in one byte arena
/// and lookups hash the query's name in place: a query costs one hash probe and no
/// allocation.
///
/// Answers are laid out for a response whose question starts at byte 12 (there is always
/// exactly one question), so owner names are the pointer `0xC00C` and names inside record
/// data may point into the question.
///
/// The arrays live in manually allocated memory, written once in `init` and freed in
/// `deinit`: reads need no bounds-checked array access, closure, or reference counting,
/// which is what makes the per-query lookup cheap. That is also why the type is
/// `@unchecked Sendable`: nothing is mutated after `init`.
public final class DNSRecordTable: @unchecked Sendable {
    /// The cap on negative-answer TTLs (SOA TTL and minimum), so that a name that appears in
    /// the mirror state is visible within seconds.
    public static let maximumNegativeTTL: UInt32 = 5

    struct Entry: Sendable {
        var hash: UInt64
        var keyOffset: Int
        var keyLength: Int
        var rrsetStart: Int
        var rrsetCount: Int
        /// Index into `zones`, or -1 when no zone encloses the name.
        var zone: Int
    }

    struct RRSet: Sendable {
        var type: UInt16
        var count: UInt16
        var offset: Int
        var length: Int
    }

    struct Zone: Sendable {
        /// Wire length of the origin, to find it as a suffix of the question name.
        var originLength: Int
        /// The SOA record after its owner name (type, class, TTL, length, data).
        var soaOffset: Int
        var soaLength: Int
    }

    /// Outcome of looking a question name up.
    enum Match {
        /// The name exists here (with or without data): its entry.
        case name(Int)
        /// The name does not exist but lies below an owned name: NXDOMAIN with that zone's SOA.
        case below(zone: Int)
        /// Not ours: forward it.
        case notOwned
    }

    /// Keys, answers and SOA records.
    let arena: UnsafeRawBufferPointer
    let entries: UnsafeBufferPointer<Entry>
    let rrsets: UnsafeBufferPointer<RRSet>
    let zones: UnsafeBufferPointer<Zone>
    /// Open addressing: each slot is 0 (empty) or the upper 32 bits of the name's hash
    /// followed by entry index + 1, so probes rarely touch an entry that cannot match.
    private let slots: UnsafeBufferPointer<UInt64>
    private let slotMask: Int
    /// Bit n set when some entry has n labels; ancestors of other depths are not probed.
    private let depthBits: (UInt64, UInt64)

    /// How many names (including empty non-terminals) the table holds.
    public var nameCount: Int { entries.count }

    /// An empty table: owns nothing, forwards everything.
    public convenience init() {
        self.init(built: DNSTableBuilder.Built())
    }

    /// Builds the table.
    ///
    /// - Throws: ``DNSWireError/messageTooLarge`` when the records of one name and type
    ///   cannot fit a DNS message.
    public convenience init(_ content: DNSTableContent) throws {
        self.init(built: try DNSTableBuilder(content).build())
    }

    private init(built: DNSTableBuilder.Built) {
        arena = Self.copy(built.arena)
        entries = Self.copy(built.entries)
        rrsets = Self.copy(built.rrsets)
        zones = Self.copy(built.zones)
        var capacity = 16
        while capacity < entries.count * 2 { capacity <<= 1 }
        var slots = [UInt64](repeating: 0, count: capacity)
        var bits: (UInt64, UInt64) = (0, 0)
        for (index, entry) in entries.enumerated() {
            var slot = Int(truncatingIfNeeded: entry.hash) & (capacity - 1)
            while slots[slot] != 0 { slot = (slot + 1) & (capacity - 1) }
            slots[slot] = (entry.hash & 0xFFFF_FFFF_0000_0000) | UInt64(index + 1)
            let depth = built.depths[index]
            if depth < 64 { bits.0 |= 1 << UInt64(depth) } else { bits.1 |= 1 << UInt64(depth - 64) }
        }
        self.slots = Self.copy(slots)
        slotMask = capacity - 1
        depthBits = bits
    }

    deinit {
        arena.deallocate()
        entries.deallocate()
        rrsets.deallocate()
        zones.deallocate()
        slots.deallocate()
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

    /// Finds the entry for the name of `length` bytes at `start` in `packet`, which must be
    /// a valid uncompressed wire name.
    func find(_ packet: UnsafeRawBufferPointer, start: Int, length: Int) -> Int? {
        let hash = NameHash.hash(packet, from: start, count: length)
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

    /// Classifies a question name: an owned name, a missing name below an owned one, or a
    /// name to forward. `labelCount` is the number of labels of the name.
    func match(_ packet: UnsafeRawBufferPointer, start: Int, length: Int, labelCount: Int) -> Match {
        if entries.isEmpty { return .notOwned }
        if let index = find(packet, start: start, length: length) { return .name(index) }
        var offset = start
        var depth = labelCount
        while depth > 0 {
            offset += Int(packet[offset]) + 1
            depth -= 1
            let present = depth < 64 ? depthBits.0 & (1 << UInt64(depth)) != 0 : depthBits.1 & (1 << UInt64(depth - 64)) != 0
            if present, let index = find(packet, start: offset, length: start + length - offset) {
                return .below(zone: entries[index].zone)
            }
        }
        return .notOwned
    }

    /// The answer set of `type` at entry `index`, if any.
    @inline(__always)
    func rrset(at index: Int, type: UInt16) -> RRSet? {
        let entry = entries[index]
        var position = entry.rrsetStart
        let end = position + entry.rrsetCount
        while position < end {
            if rrsets[position].type == type { return rrsets[position] }
            position += 1
        }
        return nil
    }
}
