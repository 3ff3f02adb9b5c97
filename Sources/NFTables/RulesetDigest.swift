/// A 64-bit digest of a ruleset: every element's hash summed (so a batch's added and deleted
/// elements update it in O(batch)), plus a hash of the sets, chains and rules (few; always
/// recomputed). Stable across processes and runs (no random seed), so a restarted
/// agent can compare its desired ruleset with the one a ``ReconcileMarker`` names.
public struct RulesetDigest: Equatable, Sendable {
    private var elements: UInt64 = 0
    private var structure: UInt64 = 0

    /// The digest of `ruleset` (one pass over every element: ~100 ns each).
    public init(_ ruleset: Ruleset) {
        for (id, table) in ruleset.tables {
            for (set, items) in table.elements {
                for element in items.values { elements &+= Self.hash(id, set, element) }
            }
        }
        structure = Self.structureHash(ruleset)
    }

    /// The combined value stored in a marker.
    public var value: UInt64 { elements ^ (structure &* 0x9e37_79b9_7f4a_7c15) }

    /// Updates the digest for `transaction` applied to the ruleset it was computed for, giving
    /// `result`. Returns false (digest unusable) for transactions that add or drop tables or
    /// sets wholesale, whose elements the operations do not list.
    public mutating func apply(_ transaction: Transaction, result: Ruleset) -> Bool {
        var structureChanged = false
        for operation in transaction.operations {
            switch operation {
            case .addElements(let id, let set, let items):
                for element in items { elements &+= Self.hash(id, set, element) }
            case .deleteElements(let id, let set, let items):
                for element in items { elements &-= Self.hash(id, set, element) }
            case .addChain, .flushChain, .deleteChain, .addRule:
                structureChanged = true
            case .addTable, .deleteTable, .addSet, .deleteSet, .flushSet:
                return false
            }
        }
        // Element-only batches (nearly every change) leave sets, chains and rules as they were.
        if structureChanged { structure = Self.structureHash(result) }
        return true
    }

    private static func structureHash(_ ruleset: Ruleset) -> UInt64 {
        var hasher = WordHash()
        for id in ruleset.tables.keys.sorted() {
            guard let table = ruleset.tables[id] else { continue }
            hasher.add(id.description)
            for name in table.sets.keys.sorted() {
                guard let set = table.sets[name] else { continue }
                hasher.add("set \(name) \(set.declaration)")
            }
            for name in table.chains.keys.sorted() {
                guard let chain = table.chains[name] else { continue }
                hasher.add("chain \(name) \(chain.base.map { "\($0.kind) \($0.hook) \($0.priority)" } ?? "")")
                for rule in table.rules[name] ?? [] { hasher.add(rule.storedComment) }
            }
        }
        return hasher.value
    }

    /// One element's hash: table, set, key and value bytes, verdict, comment.
    static func hash(_ table: TableID, _ set: String, _ element: Element) -> UInt64 {
        var hasher = WordHash()
        hasher.add(UInt8(truncatingIfNeeded: table.family.protocolFamily))
        hasher.add(table.name)
        hasher.add(set)
        withUnsafeTemporaryAllocation(byteCount: 80, alignment: 8) { buffer in
            guard let base = buffer.baseAddress else { return }
            hasher.add(UnsafeRawBufferPointer(start: base, count: ElementCoding.write(element.key, to: base)))
            switch element.data {
            case .values(let values)?:
                hasher.add(1)
                hasher.add(UnsafeRawBufferPointer(start: base, count: ElementCoding.write(values, to: base)))
            case .verdict(let verdict)?:
                hasher.add(2)
                hasher.add(verdict.description)
            case nil:
                hasher.add(3)
            }
        }
        if let comment = element.comment { hasher.add(comment) }
        return hasher.value
    }
}

/// A 64-bit word-at-a-time hash (multiply and xor-shift per 8 bytes): deterministic across
/// processes, ~8 times faster than byte-wise FNV over 100k elements.
private struct WordHash {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    private mutating func mix(_ word: UInt64) {
        value = (value ^ word) &* 0x9e37_79b9_7f4a_7c15
        value ^= value >> 29
    }

    mutating func add(_ byte: UInt8) {
        mix(UInt64(byte) | 0x100)
    }

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset + 8 <= bytes.count {
            mix(bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            offset += 8
        }
        var tail: UInt64 = 0
        while offset < bytes.count {
            tail = tail << 8 | UInt64(bytes[offset])
            offset += 1
        }
        // The length goes in too, so "ab"+"c" differs from "a"+"bc".
        mix(tail ^ UInt64(bytes.count) << 56)
    }

    mutating func add(_ text: String) {
        var text = text
        text.withUTF8 { add(UnsafeRawBufferPointer($0)) }
    }
}
