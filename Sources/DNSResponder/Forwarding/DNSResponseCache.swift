import NIOConcurrencyHelpers
import NIOCore

/// The answer cache shared by every event loop (a client's next query may arrive on
/// another loop's socket), behind one short lock: a lookup holds it for a hash probe.
final class DNSSharedResponseCache: Sendable {
    private let cache: NIOLockedValueBox<DNSResponseCache>

    init(capacity: Int) {
        cache = NIOLockedValueBox(DNSResponseCache(capacity: capacity))
    }

    /// The live entry for the question in `packet`, if any.
    @inline(__always)
    func lookup(_ packet: UnsafeRawBufferPointer, query: DNSQueryView, now: NIODeadline) -> DNSResponseCache.Entry? {
        let hash = DNSCacheKey.hash(packet, query: query)
        guard let entry = cache.withLockedValue({ $0.lookup(hash, now: now) }),
              DNSCacheKey.matches(packet, query: query, key: entry.key) else { return nil }
        return entry
    }

    /// Writes the response from the cache for the question in `packet` into `output`;
    /// false on a miss. Safe from any thread (the cache is shared by every reader).
    func response(to packet: UnsafeRawBufferPointer, query: DNSQueryView, overTCP: Bool, into output: inout ByteBuffer) -> Bool {
        let now = NIODeadline.now()
        guard let entry = lookup(packet, query: query, now: now) else { return false }
        let age = UInt32(clamping: (now - entry.storedAt).nanoseconds / 1_000_000_000)
        DNSResponseCache.response(to: query, question: UnsafeRawBufferPointer(rebasing: packet[DNSLimits.headerSize..<query.questionEnd]),
                                  answer: entry.answer, age: age, limit: DNSResponseWriter.sizeLimit(for: query, overTCP: overTCP),
                                  into: &output)
        return true
    }

    func store(_ answer: DNSUpstreamAnswer, key: [UInt8], hash: UInt64, now: NIODeadline) {
        cache.withLockedValue { $0.store(answer, key: key, hash: hash, now: now) }
    }
}

/// Answers from upstreams, kept for as long as their TTLs allow, bounded in entries.
///
/// When full, an arbitrary entry makes room: eviction is O(1) and memory never grows past
/// `capacity` entries.
struct DNSResponseCache: Sendable {
    /// A class, so a hit hands out one reference instead of copying (and retaining) the
    /// key, the answer bytes and the TTL offsets one by one.
    final class Entry: Sendable {
        /// The full key, checked on every hit (entries are filed by the key's hash).
        let key: [UInt8]
        let answer: DNSUpstreamAnswer
        let storedAt: NIODeadline
        let expiresAt: NIODeadline

        init(key: [UInt8], answer: DNSUpstreamAnswer, storedAt: NIODeadline, expiresAt: NIODeadline) {
            self.key = key
            self.answer = answer
            self.storedAt = storedAt
            self.expiresAt = expiresAt
        }
    }

    let capacity: Int
    private var entries: [UInt64: Entry] = [:]

    init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    var count: Int { entries.count }

    /// The live entry filed under `key` (a key hash), removing it if it has expired. The
    /// caller checks the entry's full key.
    mutating func lookup(_ key: UInt64, now: NIODeadline) -> Entry? {
        guard let entry = entries[key] else { return nil }
        if entry.expiresAt <= now {
            entries[key] = nil
            return nil
        }
        return entry
    }

    /// Keeps `answer` for its ``DNSUpstreamAnswer/cacheTTL`` seconds (nothing when 0). A
    /// different key with the same hash is replaced: a collision costs a miss, never a
    /// wrong answer.
    mutating func store(_ answer: DNSUpstreamAnswer, key: [UInt8], hash: UInt64, now: NIODeadline) {
        guard answer.cacheTTL > 0, capacity > 0 else { return }
        if entries[hash] == nil, entries.count >= capacity, !entries.isEmpty {
            entries.remove(at: entries.startIndex)
        }
        entries[hash] = Entry(key: key, answer: answer, storedAt: now, expiresAt: now + .seconds(Int64(answer.cacheTTL)))
    }

    /// Builds the response to `query` from a stored answer: the client's ID, flags and
    /// question, record TTLs reduced by the answer's age, OPT when the client sent one, and
    /// TC with empty sections when it does not fit `limit`.
    static func response(to query: DNSQueryView, question: UnsafeRawBufferPointer, answer: DNSUpstreamAnswer, age: UInt32,
                         limit: Int, into buffer: inout ByteBuffer) {
        let bytes = answer.bytes
        let rcode = DNSResponseCode(rawValue: answer.flags & 0xF)
        let optLength = query.edns == nil ? 0 : DNSResponseWriter.optLength
        let truncated = bytes.count + optLength > limit
        // AA is ours to give only for owned names; AD passes through.
        let keptFlags = answer.flags & DNSHeader.adBit
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
                bytes.withUnsafeBytes { stored in
                    if let source = stored.baseAddress { writer.copy(source + query.questionEnd, count: sectionsLength) }
                }
                if age > 0 {
                    for offset in answer.ttlOffsets {
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
