import NIOCore
import Testing
@testable import DNSResponder

@Suite("forwarded-answer cache")
struct ResponseCacheTests {
    private func answer(ttl: UInt32) -> DNSUpstreamAnswer {
        DNSUpstreamAnswer(bytes: [UInt8](repeating: 0, count: 12), ttlOffsets: [], cacheTTL: ttl, flags: 0)
    }

    private func hash(_ index: Int) -> UInt64 { UInt64(index) &* 0x9E37_79B9_7F4A_7C15 }

    @Test("never holds more than its capacity; the newest entries are found")
    func bounded() {
        var cache = DNSResponseCache(capacity: 100)
        let now = NIODeadline.now()
        for index in 0..<1_000 {
            cache.store(.make(key: [1], answer: answer(ttl: 60), storedAt: now), hash: hash(index), now: now)
            #expect(cache.count <= 100)
        }
        #expect(cache.count >= 50, "a bounded cache should still be mostly full: \(cache.count)")
        #expect(cache.lookup(hash(999), now: now) != nil)
        #expect(DNSResponseCache(capacity: 0).count == 0)
    }

    @Test("below its capacity nothing is evicted, whatever the hashes; removals keep the rest reachable")
    func noEvictionBelowCapacity() {
        var cache = DNSResponseCache(capacity: 10_000)
        let now = NIODeadline.now()
        // Many hashes share home slots (low bits equal), so runs are long and removals shift.
        let hashes = (0..<5_000).map { UInt64($0 % 64) | UInt64($0) << 40 }
        for hash in hashes { cache.store(.make(key: [1], answer: answer(ttl: 60), storedAt: now), hash: hash, now: now) }
        #expect(cache.count == 5_000)
        #expect(hashes.allSatisfy { cache.lookup($0, now: now) != nil })
        // Expire every other entry by storing it again with a TTL that is already over.
        for hash in hashes.enumerated().filter({ $0.offset % 2 == 0 }).map(\.element) {
            cache.store(.make(key: [1], answer: answer(ttl: 1), storedAt: now - .seconds(5)), hash: hash, now: now)
            #expect(cache.lookup(hash, now: now) == nil)
        }
        #expect(cache.count == 2_500)
        #expect(hashes.enumerated().filter { $0.offset % 2 == 1 }.allSatisfy { cache.lookup($0.element, now: now) != nil })
    }

    @Test("an expired entry is removed on lookup; the same hash stored again replaces the entry")
    func expiryAndReplacement() {
        var cache = DNSResponseCache(capacity: 16)
        let now = NIODeadline.now()
        cache.store(.make(key: [1], answer: answer(ttl: 5), storedAt: now), hash: 7, now: now)
        #expect(cache.lookup(7, now: now + .seconds(4)) != nil)
        #expect(cache.lookup(7, now: now + .seconds(5)) == nil)
        #expect(cache.count == 0)
        cache.store(.make(key: [1], answer: answer(ttl: 5), storedAt: now), hash: 7, now: now)
        cache.store(.make(key: [2], answer: answer(ttl: 9), storedAt: now), hash: 7, now: now)
        #expect(cache.count == 1)
        #expect(cache.lookup(7, now: now)?.header.expiresAt == now + .seconds(9))
    }

    @Test("a stored answer under another question's hash is a miss, not a wrong answer")
    func collisionIsAMiss() throws {
        let shared = DNSSharedResponseCache(capacity: 16)
        let asked = try TableFixture.query("www.example.test", .a)
        let other = try TableFixture.query("mail.example.test", .a)
        try asked.withUnsafeBytes { askedBytes in
            try other.withUnsafeBytes { otherBytes in
                guard case .query(let askedView) = DNSQueryView.read(askedBytes),
                      case .query(let otherView) = DNSQueryView.read(otherBytes) else { throw TestSetupError("queries did not parse") }
                let now = NIODeadline.now()
                // The other question's key filed under the asked question's hash.
                shared.store(answer(ttl: 60), key: DNSCacheKey.bytes(otherBytes, query: otherView),
                             hash: DNSCacheKey.hash(askedBytes, query: askedView), now: now)
                #expect(shared.lookup(askedBytes, query: askedView, now: now) == nil)
                shared.store(answer(ttl: 60), key: DNSCacheKey.bytes(askedBytes, query: askedView),
                             hash: DNSCacheKey.hash(askedBytes, query: askedView), now: now)
                #expect(shared.lookup(askedBytes, query: askedView, now: now) != nil)
            }
        }
    }
}
