import NIOConcurrencyHelpers
import NIOCore

/// The answer cache shared by every UDP reader and event loop (a client's next query may
/// arrive on another socket), behind one short lock: a lookup holds it for one bucket probe.
final class DNSSharedResponseCache: Sendable {
    private let cache: NIOLockedValueBox<DNSResponseCache>

    init(capacity: Int) {
        cache = NIOLockedValueBox(DNSResponseCache(capacity: capacity))
    }

    /// The live entry for the question in `packet`, if any.
    @inline(__always)
    func lookup(_ packet: UnsafeRawBufferPointer, query: DNSQueryView, now: NIODeadline) -> DNSCachedAnswer? {
        let hash = DNSCacheKey.hash(packet, query: query)
        guard let entry = cache.withLockedValue({ $0.lookup(hash, now: now) }),
              entry.withParts({ key, _, _ in DNSCacheKey.matches(packet, query: query, key: key) }) else { return nil }
        return entry
    }

    /// Writes the response from the cache for the question in `packet` into `output`;
    /// false on a miss. Safe from any thread.
    func response(to packet: UnsafeRawBufferPointer, query: DNSQueryView, overTCP: Bool, into output: inout ByteBuffer) -> Bool {
        let now = NIODeadline.now()
        guard let entry = lookup(packet, query: query, now: now) else { return false }
        let header = entry.header
        let age = UInt32(clamping: (now - header.storedAt).nanoseconds / 1_000_000_000)
        entry.withParts { _, bytes, ttlOffsets in
            DNSResponseCache.response(to: query, question: UnsafeRawBufferPointer(rebasing: packet[DNSLimits.headerSize..<query.questionEnd]),
                                      bytes: bytes, flags: header.flags, ttlOffsets: ttlOffsets, age: age,
                                      limit: DNSResponseWriter.sizeLimit(for: query, overTCP: overTCP), into: &output)
        }
        return true
    }

    func store(_ answer: DNSUpstreamAnswer, key: [UInt8], hash: UInt64, now: NIODeadline) {
        guard answer.cacheTTL > 0 else { return }
        // Built outside the lock; only the slot write happens under it.
        let entry = DNSCachedAnswer.make(key: key, answer: answer, storedAt: now)
        cache.withLockedValue { $0.store(entry, hash: hash, now: now) }
    }
}

/// One cached answer in one allocation: its key, the message bytes and the offsets of its
/// TTLs side by side, so a hit reads one block instead of an object and three arrays.
/// Immutable once made, hence shareable between threads.
struct DNSCachedAnswer: @unchecked Sendable {
    struct Header {
        var keyLength: Int
        var bytesLength: Int
        var ttlCount: Int
        var flags: UInt16
        var storedAt: NIODeadline
        var expiresAt: NIODeadline
    }

    private let storage: ManagedBuffer<Header, UInt8>

    var header: Header { storage.header }

    /// Copies `key` and `answer` into a new block. TTL offsets are stored as 16-bit values
    /// (a message is at most 65,535 bytes).
    static func make(key: [UInt8], answer: DNSUpstreamAnswer, storedAt: NIODeadline) -> DNSCachedAnswer {
        let header = Header(keyLength: key.count, bytesLength: answer.bytes.count, ttlCount: answer.ttlOffsets.count, flags: answer.flags,
                            storedAt: storedAt, expiresAt: storedAt + .seconds(Int64(answer.cacheTTL)))
        let total = key.count + answer.bytes.count + 2 * answer.ttlOffsets.count
        let storage = ManagedBuffer<Header, UInt8>.create(minimumCapacity: total) { _ in header }
        storage.withUnsafeMutablePointerToElements { elements in
            let base = UnsafeMutableRawPointer(elements)
            key.withUnsafeBytes { if let source = $0.baseAddress { base.copyMemory(from: source, byteCount: key.count) } }
            answer.bytes.withUnsafeBytes { if let source = $0.baseAddress { (base + key.count).copyMemory(from: source, byteCount: $0.count) } }
            var at = base + key.count + answer.bytes.count
            for offset in answer.ttlOffsets {
                at.storeBytes(of: UInt16(clamping: offset), as: UInt16.self)
                at += 2
            }
        }
        return DNSCachedAnswer(storage: storage)
    }

    /// The key, the message bytes and the TTL offsets (16-bit, native order).
    @inline(__always)
    func withParts<Result>(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Result) -> Result {
        storage.withUnsafeMutablePointers { header, elements in
            let base = UnsafeRawPointer(elements)
            let key = header.pointee.keyLength, bytes = header.pointee.bytesLength
            return body(UnsafeRawBufferPointer(start: base, count: key), UnsafeRawBufferPointer(start: base + key, count: bytes),
                        UnsafeRawBufferPointer(start: base + key + bytes, count: 2 * header.pointee.ttlCount))
        }
    }
}

/// Answers from upstreams, kept for as long as their TTLs allow, bounded in entries.
///
/// An open-addressing table of (key hash, entry) slots with linear probing, at most half
/// full: a lookup usually reads one cache line of slots and then the entry, and nothing
/// else. Nothing is evicted before the cache holds `capacity` entries; then the entry in
/// the new key's home slot makes room (O(1), arbitrary), so memory never grows past
/// `capacity` entries. Removal shifts the following run back, so no tombstones build up.
struct DNSResponseCache: Sendable {
    private struct Slot {
        var hash: UInt64
        var entry: DNSCachedAnswer?
    }

    let capacity: Int
    private var slots: [Slot]
    private let mask: Int
    private(set) var count = 0

    init(capacity: Int) {
        self.capacity = max(0, capacity)
        var size = 8
        while size < 2 * self.capacity { size <<= 1 }
        mask = size - 1
        slots = Array(repeating: Slot(hash: 0, entry: nil), count: size)
    }

    @inline(__always)
    private func home(_ hash: UInt64) -> Int {
        // The low bits also pick the record table's slots; mix in the high ones.
        Int(truncatingIfNeeded: hash ^ hash >> 29) & mask
    }

    /// The slot holding `hash`, if any.
    @inline(__always)
    private func find(_ hash: UInt64) -> Int? {
        var index = home(hash)
        while slots[index].entry != nil {
            if slots[index].hash == hash { return index }
            index = (index + 1) & mask
        }
        return nil
    }

    /// The live entry filed under `hash` (a key hash), removing it if it has expired. The
    /// caller checks the entry's full key.
    mutating func lookup(_ hash: UInt64, now: NIODeadline) -> DNSCachedAnswer? {
        guard let index = find(hash), let entry = slots[index].entry else { return nil }
        if entry.header.expiresAt <= now {
            remove(at: index)
            return nil
        }
        return entry
    }

    /// Files `entry` under `hash`. A different key with the same hash is replaced: a
    /// collision costs a miss, never a wrong answer.
    mutating func store(_ entry: DNSCachedAnswer, hash: UInt64, now: NIODeadline) {
        guard capacity > 0 else { return }
        if let index = find(hash) {
            slots[index].entry = entry
            return
        }
        if count >= capacity {
            // Full: the occupant of the new key's home slot (or the run that covers it) goes.
            var victim = home(hash)
            while slots[victim].entry == nil { victim = (victim + 1) & mask }
            remove(at: victim)
        }
        var index = home(hash)
        while slots[index].entry != nil { index = (index + 1) & mask }
        slots[index] = Slot(hash: hash, entry: entry)
        count += 1
    }

    /// Empties `index` and moves later entries of its run back into the hole when their
    /// home slot allows it, so every entry stays reachable from its home without gaps.
    private mutating func remove(at index: Int) {
        var hole = index
        var next = (index + 1) & mask
        while slots[next].entry != nil {
            let wanted = home(slots[next].hash)
            // `next` may fill the hole unless its home lies cyclically in (hole, next].
            let homeAfterHole = hole <= next ? (wanted > hole && wanted <= next) : (wanted > hole || wanted <= next)
            if !homeAfterHole {
                slots[hole] = slots[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        slots[hole] = Slot(hash: 0, entry: nil)
        count -= 1
    }

    /// Builds the response to `query` from a stored answer: the client's ID, flags and
    /// question, record TTLs reduced by the answer's age, OPT when the client sent one, and
    /// TC with empty sections when it does not fit `limit`.
    static func response(to query: DNSQueryView, question: UnsafeRawBufferPointer, answer: DNSUpstreamAnswer, age: UInt32,
                         limit: Int, into buffer: inout ByteBuffer) {
        // TTLs are only rewritten for an aged answer (a fresh one is sent as received).
        let offsets = age == 0 ? [] : answer.ttlOffsets.map { UInt16(clamping: $0) }
        answer.bytes.withUnsafeBytes { bytes in
            offsets.withUnsafeBytes { ttlOffsets in
                response(to: query, question: question, bytes: bytes, flags: answer.flags, ttlOffsets: ttlOffsets, age: age, limit: limit, into: &buffer)
            }
        }
    }

    /// As above, from a stored message: `ttlOffsets` holds 16-bit offsets in native order.
    static func response(to query: DNSQueryView, question: UnsafeRawBufferPointer, bytes: UnsafeRawBufferPointer, flags answerFlags: UInt16,
                         ttlOffsets: UnsafeRawBufferPointer, age: UInt32, limit: Int, into buffer: inout ByteBuffer) {
        guard bytes.count >= DNSLimits.headerSize else {
            // Never stored (answers are parsed first); answered safely all the same.
            DNSResponseWriter.headerOnly(id: query.id, queryFlags: query.flags, rcode: .serverFailure, into: &buffer)
            return
        }
        let rcode = DNSResponseCode(rawValue: answerFlags & 0xF)
        let optLength = query.edns == nil ? 0 : DNSResponseWriter.optLength
        let truncated = bytes.count + optLength > limit
        // AA is ours to give only for owned names; AD passes through.
        let keptFlags = answerFlags & DNSHeader.adBit
        let flags = DNSResponseWriter.flags(query: query.flags, rcode: rcode, authoritative: false, truncated: truncated, extra: keptFlags)
        buffer.clear()
        let additional = UInt16(bytes[10]) << 8 | UInt16(bytes[11])
        let sectionsLength = truncated ? 0 : max(bytes.count - query.questionEnd, 0)
        // One bounds and uniqueness check, then plain stores: every cache hit comes here.
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: DNSLimits.headerSize + question.count + sectionsLength + optLength) { out in
            guard let base = out.baseAddress else { return 0 }
            var writer = DNSRawWriter(base: base)
            writer.header(id: query.id, flags: flags, questions: 1,
                          answers: truncated ? 0 : UInt16(bytes[6]) << 8 | UInt16(bytes[7]),
                          authorities: truncated ? 0 : UInt16(bytes[8]) << 8 | UInt16(bytes[9]),
                          additionals: (truncated ? 0 : additional) + (optLength == 0 ? 0 : 1))
            if let source = question.baseAddress { writer.copy(source, count: question.count) }
            if sectionsLength > 0 {
                let sectionsStart = writer.offset
                if let source = bytes.baseAddress { writer.copy(source + query.questionEnd, count: sectionsLength) }
                if age > 0 {
                    for position in stride(from: 0, to: ttlOffsets.count - 1, by: 2) {
                        let offset = Int(ttlOffsets.loadUnaligned(fromByteOffset: position, as: UInt16.self))
                        let at = sectionsStart + offset - query.questionEnd
                        guard at >= sectionsStart, at + 4 <= writer.offset else { continue }
                        let ttl = UInt32(bigEndian: (base + at).loadUnaligned(as: UInt32.self))
                        (base + at).storeBytes(of: (ttl > age ? ttl - age : 0).bigEndian, as: UInt32.self)
                    }
                }
            }
            if let edns = query.edns { writer.opt(edns, rcode: rcode) }
            return writer.offset
        }
    }
}
