/// A hash index that stores no keys: only positions into an array its owner keeps, each
/// with an ordinal for owners that index several keys per element (a service's slots).
///
/// The owner supplies hashes and says, through closures, whether the element at a position
/// matches: keys are recomputed from the elements, never stored. At 100k services this is
/// 8 bytes per bucket (two buckets per entry at most) where a `Dictionary` of the same
/// entries took 100–300 bytes per service.
///
/// Open addressing with linear probing and backward-shift deletion (no tombstones); the
/// bucket count is a power of two at least twice the entry count. Each bucket also keeps 12
/// bits of its entry's hash, so most probes that cannot match are skipped without asking the
/// owner (which would have to recompute a key from an element).
struct PositionIndex: Sendable {
    /// One indexed key: the element at `position` in the owner's array, and which of its
    /// keys (0 for owners with one key per element).
    struct Entry: Equatable {
        var position: Int
        var ordinal: Int

        /// Ordinals are kept in 20 bits.
        static let maximumOrdinal = 0xF_FFFF

        init(position: Int, ordinal: Int = 0) {
            self.position = position
            self.ordinal = ordinal
        }

        fileprivate init?(bucket: UInt64) {
            guard bucket != 0 else { return nil }
            position = Int(truncatingIfNeeded: bucket & 0xFFFF_FFFF) - 1
            ordinal = Int(truncatingIfNeeded: bucket >> 32 & 0xF_FFFF)
        }

        /// The bucket contents for this entry under `hash`: position + 1, ordinal, hash tag.
        fileprivate func bucket(hash: Int) -> UInt64 {
            UInt64(position + 1) | UInt64(ordinal) << 32 | PositionIndex.tag(hash)
        }
    }

    /// The hash bits a bucket keeps: the top 12, independent of the low bits that pick it.
    fileprivate static func tag(_ hash: Int) -> UInt64 {
        UInt64(UInt(bitPattern: hash) >> 52) << 52
    }

    private static let tagMask: UInt64 = 0xFFF << 52

    /// Chunked like the services they index: a store that is still shared copies one chunk
    /// of buckets per change, not the whole table (2 MiB at 100k services).
    private var buckets = ChunkedArray<UInt64>()
    private(set) var count = 0

    init() {}

    /// The entry with this hash that `matches` accepts.
    func first(hash: Int, where matches: (Entry) -> Bool) -> Entry? {
        guard !buckets.isEmpty else { return nil }
        let mask = buckets.count - 1
        let tag = Self.tag(hash)
        var bucket = hash & mask
        while case let stored = buckets[bucket], let entry = Entry(bucket: stored) {
            if stored & Self.tagMask == tag, matches(entry) { return entry }
            bucket = (bucket + 1) & mask
        }
        return nil
    }

    /// Adds `entry` under `hash`. `rehash` gives the hash of any stored entry, for growing.
    mutating func insert(_ entry: Entry, hash: Int, rehash: (Entry) -> Int) {
        precondition(entry.position >= 0 && entry.position < Int(UInt32.max) && entry.ordinal >= 0 && entry.ordinal <= Entry.maximumOrdinal,
                     "position index entry out of range")
        if (count + 1) * 2 > buckets.count { reserveCapacity(count + 1, rehash: rehash) }
        place(entry.bucket(hash: hash), hash: hash)
        count += 1
    }

    /// Removes `entry`, stored under `hash`; later entries of its probe run shift back.
    mutating func remove(_ entry: Entry, hash: Int, rehash: (Entry) -> Int) {
        guard var hole = bucket(of: entry, hash: hash) else { return }
        let mask = buckets.count - 1
        var next = (hole + 1) & mask
        while let moving = Entry(bucket: buckets[next]) {
            let home = rehash(moving) & mask
            // Shift back unless its home lies cyclically in (hole, next].
            if (next - home) & mask >= (next - hole) & mask {
                buckets[hole] = buckets[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        buckets[hole] = 0
        count -= 1
    }

    /// Repoints `entry` (stored under `hash`) at another position, as when the owner moves
    /// an element.
    mutating func move(_ entry: Entry, hash: Int, to position: Int) {
        guard let bucket = bucket(of: entry, hash: hash) else { return }
        buckets[bucket] = Entry(position: position, ordinal: entry.ordinal).bucket(hash: hash)
    }

    /// Makes room for `capacity` entries without regrowing.
    mutating func reserveCapacity(_ capacity: Int, rehash: (Entry) -> Int) {
        guard capacity * 2 > buckets.count else { return }
        var size = Swift.max(16, buckets.count)
        while size < capacity * 2 { size *= 2 }
        let old = buckets
        buckets = ChunkedArray(repeating: 0, count: size)
        for stored in old where stored != 0 {
            if let entry = Entry(bucket: stored) { place(stored, hash: rehash(entry)) }
        }
    }

    private mutating func place(_ stored: UInt64, hash: Int) {
        let mask = buckets.count - 1
        var bucket = hash & mask
        while buckets[bucket] != 0 { bucket = (bucket + 1) & mask }
        buckets[bucket] = stored
    }

    private func bucket(of entry: Entry, hash: Int) -> Int? {
        guard !buckets.isEmpty else { return nil }
        let mask = buckets.count - 1
        let stored = entry.bucket(hash: hash)
        var bucket = hash & mask
        while buckets[bucket] != 0 {
            if buckets[bucket] == stored { return bucket }
            bucket = (bucket + 1) & mask
        }
        return nil
    }
}
