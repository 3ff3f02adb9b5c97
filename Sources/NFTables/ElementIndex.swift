/// An open-addressing hash index of positions in a dense array (linear probing, at most
/// three-quarters full): what ``ElementSet`` finds a key's position with.
///
/// Each slot is 32 bits: the position plus one in the low 24 bits (zero: empty) and the top
/// 8 bits of the key's hash, so most probes that miss are rejected without touching the
/// keys: 4 to 8 bytes per element instead of a dictionary's copy of each key. The index
/// does not hold the keys: callers pass a key's hash, a test for "the key at this position
/// is the one sought", and, where slots move (growth, the backward shift that replaces
/// tombstones on removal), the hash of the key at a position.
struct ElementIndex: Sendable {
    private var slots: [UInt32] = []
    private var used = 0
    /// The most positions the 24-bit field can name.
    static let maximumCount = (1 << 24) - 2

    private var mask: Int { slots.count - 1 }
    private static func tag(_ hash: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: hash >> 56) << 24 }
    private static func position(_ slot: UInt32) -> Int { Int(slot & 0xff_ffff) - 1 }
    private func home(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: hash) & mask }

    /// Makes room for `count` positions without growing; `hashOf` gives the hash of the key at
    /// an indexed position.
    mutating func reserveCapacity(_ count: Int, hashOf: (Int) -> UInt64) {
        var size = max(slots.count, 16)
        while count > size / 4 * 3 { size *= 2 }
        guard size != slots.count else { return }
        resize(size, hashOf: hashOf)
    }

    /// Shrinks to the smallest size that holds the positions indexed now (after a bulk build
    /// sized for more than came).
    mutating func trim(hashOf: (Int) -> UInt64) {
        var size = 16
        while used > size / 4 * 3 { size *= 2 }
        if size < slots.count { resize(size, hashOf: hashOf) }
    }

    private mutating func resize(_ size: Int, hashOf: (Int) -> UInt64) {
        let old = slots
        slots = [UInt32](repeating: 0, count: size)
        for slot in old where slot != 0 { place(slot, hash: hashOf(Self.position(slot))) }
    }

    private mutating func place(_ slot: UInt32, hash: UInt64) {
        var probe = home(hash)
        while slots[probe] != 0 { probe = (probe + 1) & mask }
        slots[probe] = slot
    }

    /// The position among those under `hash` whose key `matches`, if any.
    func find(hash: UInt64, _ matches: (Int) -> Bool) -> Int? {
        guard !slots.isEmpty else { return nil }
        let tag = Self.tag(hash)
        var probe = home(hash)
        while true {
            let slot = slots[probe]
            if slot == 0 { return nil }
            if slot & 0xff00_0000 == tag, matches(Self.position(slot)) { return Self.position(slot) }
            probe = (probe + 1) & mask
        }
    }

    /// Whether one more position needs a larger index first (``reserveCapacity(_:hashOf:)``).
    var isFull: Bool { used + 1 > slots.count / 4 * 3 }

    /// Indexes `position` under `hash`.
    /// - Precondition: not ``isFull``.
    mutating func insert(_ position: Int, hash: UInt64) {
        precondition(position < Self.maximumCount, "a set holds at most \(Self.maximumCount) elements")
        precondition(!isFull, "ElementIndex.insert into a full index")
        place(Self.tag(hash) | UInt32(position + 1), hash: hash)
        used += 1
    }

    /// The slot holding `position` (indexed under `hash`).
    private func slot(of position: Int, hash: UInt64) -> Int? {
        guard !slots.isEmpty else { return nil }
        var probe = home(hash)
        while slots[probe] != 0 {
            if Self.position(slots[probe]) == position { return probe }
            probe = (probe + 1) & mask
        }
        return nil
    }

    /// Forgets `position` (indexed under `hash`). The slots after it in its run shift back
    /// where their probe sequence allows, so no tombstone is left.
    mutating func remove(_ position: Int, hash: UInt64, hashOf: (Int) -> UInt64) {
        guard var hole = slot(of: position, hash: hash) else { return }
        var probe = hole
        while true {
            probe = (probe + 1) & mask
            let slot = slots[probe]
            if slot == 0 { break }
            // The entry may fill the hole when the hole lies on its probe path (between its
            // home and where it sits).
            let ideal = home(hashOf(Self.position(slot)))
            if (hole - ideal) & mask <= (probe - ideal) & mask {
                slots[hole] = slot
                hole = probe
            }
        }
        slots[hole] = 0
        used -= 1
    }

    /// Renames `old` (indexed under `hash`) to `new` (the dense array moved it).
    mutating func move(_ old: Int, to new: Int, hash: UInt64) {
        guard let slot = slot(of: old, hash: hash) else { return }
        slots[slot] = Self.tag(hash) | UInt32(new + 1)
    }
}
