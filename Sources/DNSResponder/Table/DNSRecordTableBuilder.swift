/// Builds a ``DNSRecordTable`` one part at a time (e.g. one part per mirrored service), so
/// that the whole content never exists as one ``DNSTableContent``: each part is encoded at
/// once into its shard's run of records, the compact form the table serves from, and the
/// part's names, records and strings are freed before the next part is added.
///
/// Peak memory is therefore about the finished table plus, while ``build()`` runs, one shard
/// being copied out of its run (each run is released as soon as its shard exists).
///
/// A name given by more than one part gets the records of all of them (in the order the
/// parts were added) and is listed in ``repeatedNames``, since a later patch that replaces
/// one part's names cannot keep the other part's records for it.
public struct DNSRecordTableBuilder {
    /// Per shard: records as bytes, and where each live name's record starts.
    fileprivate struct ShardRun {
        var bytes: [UInt8] = []
        var offsets: [UInt64: Int] = [:]
        /// Names whose hash another name already has (rare; looked up by key).
        var colliding: [[UInt8]: Int] = [:]
    }

    private let zones: DNSTableBuilder.Zones
    private var runs: [ShardRun]
    /// Names added by more than one part (lower-cased).
    public private(set) var repeatedNames: Set<DNSName> = []

    /// A builder for a table speaking for `zones` (deduplicated by origin, first wins).
    ///
    /// - Parameter expectedNames: roughly how many names will be added, so that the
    ///   per-shard indexes are sized once instead of rehashing as they grow.
    public init(zones: [DNSZone], expectedNames: Int = 0) {
        self.zones = DNSTableBuilder.zones(zones)
        let perShard = expectedNames / DNSRecordTable.shardCount
        runs = (0..<DNSRecordTable.shardCount).map { _ in
            var run = ShardRun()
            // Only the index: reserving the record bytes too left more freed memory behind in
            // the allocator than the doubling it saves (measured at 100k services).
            if perShard > 0 { run.offsets.reserveCapacity(perShard + perShard / 8) }
            return run
        }
    }

    /// Encodes and adds one part. `part.zones` is ignored; the names below an owned name of
    /// `part` get empty non-terminals as in ``DNSRecordTable/init(_:)``.
    ///
    /// - Parameter head: one of the part's names (e.g. a service's name) under which the
    ///   table remembers the part's other names, so that a later patch can remove the part
    ///   knowing only its head (``DNSRecordTable/partNames(head:)``), without keeping
    ///   the content it came from. Costs the bytes of those names in the table.
    /// - Throws: ``DNSWireError/messageTooLarge`` when one name's records cannot fit a DNS
    ///   message; the builder is then unchanged for the names not yet added.
    public mutating func add(_ part: DNSTableContent, head: DNSName? = nil) throws {
        for name in try DNSTableBuilder.encode(part, origins: zones.origins, head: head) {
            try add(name)
        }
    }

    mutating func add(_ name: DNSEncodedName) throws {
        let shard = DNSRecordTable.shard(of: name.hash)
        if let existing = runs[shard].existingOffset(of: name) {
            var merged = runs[shard].bytes.withUnsafeBytes { DNSRecordShard.decode(in: $0, at: existing) }
            try merged.merge(name)
            runs[shard].bytes.withUnsafeMutableBytes { bytes in
                var header = bytes.loadUnaligned(fromByteOffset: existing, as: DNSRecordShard.RecordHeader.self)
                header.flags |= DNSRecordShard.removedFlag
                bytes.storeBytes(of: header, toByteOffset: existing, as: DNSRecordShard.RecordHeader.self)
            }
            runs[shard].insert(merged, at: DNSRecordShard.append(merged, to: &runs[shard].bytes))
            repeatedNames.insert(DNSName(uncheckedWire: name.key))
        } else {
            runs[shard].insert(name, at: DNSRecordShard.append(name, to: &runs[shard].bytes))
        }
    }

    /// Adds every name `other` holds, as if its parts had been added here after this
    /// builder's own: so that parts can be encoded by several builders at once (one per
    /// core) and joined in order. A name both hold is merged (and listed in
    /// ``repeatedNames``) exactly as ``add(_:head:)`` would; other records are copied as
    /// bytes. Both builders must speak for the same zones. `other` is emptied shard by shard
    /// as it is copied, so the two never hold a whole table twice.
    ///
    /// - Throws: ``DNSWireError/messageTooLarge`` when a merged name outgrows a message.
    public mutating func absorb(_ other: inout DNSRecordTableBuilder) throws {
        repeatedNames.formUnion(other.repeatedNames)
        for shard in other.runs.indices {
            try other.runs[shard].bytes.withUnsafeBytes { source in
                var offset = 0
                while offset < source.count {
                    let size = DNSRecordShard.recordSize(in: source, at: offset)
                    let header = source.loadUnaligned(fromByteOffset: offset, as: DNSRecordShard.RecordHeader.self)
                    defer { offset += size }
                    guard header.flags & DNSRecordShard.removedFlag == 0 else { continue }
                    let keyStart = offset + DNSRecordShard.keyOffset(header)
                    let key = UnsafeRawBufferPointer(rebasing: source[keyStart..<keyStart + Int(header.keyLength)])
                    if runs[shard].existingOffset(hash: header.hash, key: key) != nil {
                        try add(DNSRecordShard.decode(in: source, at: offset))
                    } else {
                        let start = runs[shard].bytes.count
                        runs[shard].bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: source[offset..<offset + size]))
                        runs[shard].insert(hash: header.hash, key: key, at: start)
                    }
                }
            }
            other.runs[shard] = ShardRun()
        }
    }

    /// The table; the builder is left empty.
    public mutating func build() -> DNSRecordTable {
        var shards: [DNSRecordShard] = []
        shards.reserveCapacity(runs.count)
        for index in runs.indices {
            runs[index].offsets = [:]
            runs[index].colliding = [:]
            shards.append(DNSRecordShard.make(runs[index].bytes))
            runs[index].bytes = []
        }
        return DNSRecordTable(zones: zones, shards: shards)
    }
}

extension DNSRecordTableBuilder.ShardRun {
    /// Where the live record of `name`'s key starts, if there is one.
    func existingOffset(of name: DNSEncodedName) -> Int? {
        name.key.withUnsafeBytes { existingOffset(hash: name.hash, key: $0) }
    }

    func existingOffset(hash: UInt64, key: UnsafeRawBufferPointer) -> Int? {
        guard let offset = offsets[hash] else { return nil }
        if keyMatches(key, at: offset) { return offset }
        return colliding[Array(key)]
    }

    mutating func insert(_ name: DNSEncodedName, at offset: Int) {
        name.key.withUnsafeBytes { insert(hash: name.hash, key: $0, at: offset) }
    }

    mutating func insert(hash: UInt64, key: UnsafeRawBufferPointer, at offset: Int) {
        if let current = offsets[hash], !keyMatches(key, at: current) {
            colliding[Array(key)] = offset
        } else {
            offsets[hash] = offset
        }
    }

    private func keyMatches(_ key: UnsafeRawBufferPointer, at offset: Int) -> Bool {
        bytes.withUnsafeBytes { run in
            let header = run.loadUnaligned(fromByteOffset: offset, as: DNSRecordShard.RecordHeader.self)
            let start = offset + DNSRecordShard.keyOffset(header)
            return Int(header.keyLength) == key.count && run[start..<start + key.count].elementsEqual(key)
        }
    }
}
