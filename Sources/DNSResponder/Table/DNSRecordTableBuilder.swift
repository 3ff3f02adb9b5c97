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

    /// The table; the builder is left empty.
    public mutating func build() -> DNSRecordTable {
        let (zones, shards) = finish()
        return DNSRecordTable(zones: zones, shards: shards)
    }

    /// The table's parts (its zones and compact shards); the builder is left empty.
    mutating func finish() -> (zones: DNSTableBuilder.Zones, shards: [DNSRecordShard]) {
        var shards: [DNSRecordShard] = []
        shards.reserveCapacity(runs.count)
        for index in runs.indices {
            runs[index].offsets = [:]
            runs[index].colliding = [:]
            shards.append(DNSRecordShard.make(runs[index].bytes))
            runs[index].bytes = []
        }
        return (zones, shards)
    }
}

extension DNSRecordTableBuilder.ShardRun {
    /// Where the live record of `name`'s key starts, if there is one.
    func existingOffset(of name: DNSEncodedName) -> Int? {
        guard let offset = offsets[name.hash] else { return nil }
        if keyMatches(name.key, at: offset) { return offset }
        return colliding[name.key]
    }

    mutating func insert(_ name: DNSEncodedName, at offset: Int) {
        if let current = offsets[name.hash], !keyMatches(name.key, at: current) {
            colliding[name.key] = offset
        } else {
            offsets[name.hash] = offset
        }
    }

    private func keyMatches(_ key: [UInt8], at offset: Int) -> Bool {
        bytes.withUnsafeBytes { run in
            let header = run.loadUnaligned(fromByteOffset: offset, as: DNSRecordShard.RecordHeader.self)
            let start = offset + DNSRecordShard.keyOffset(header)
            return Int(header.keyLength) == key.count && run[start..<start + key.count].elementsEqual(key)
        }
    }
}
