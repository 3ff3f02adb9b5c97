/// The names this responder answers itself, with every answer precomputed in wire form.
///
/// Immutable, so any number of event loops read it without locks; an update makes a new
/// table and swaps it in (see ``DNSServer/replaceTable(_:)``). Names are spread over
/// ``shardCount`` shards by hash: a lookup hashes the query's name in place and probes one
/// shard (no copy, no allocation), and ``patched(removing:adding:)`` rebuilds only the
/// shards a change touches and shares the others with the previous table.
///
/// Answers are laid out for a response whose question starts at byte 12 (there is always
/// exactly one question), so owner names are the pointer `0xC00C` and names inside record
/// data may point into the question.
public final class DNSRecordTable: @unchecked Sendable {
    /// The cap on negative-answer TTLs (SOA TTL and minimum), so that a name that appears in
    /// the mirror state is visible within seconds.
    public static let maximumNegativeTTL: UInt32 = 5
    /// Shards per table; a one-service change rebuilds at most a few.
    public static let shardCount = 64

    struct Zone: Sendable {
        /// Wire length of the origin, to find it as a suffix of the question name.
        var originLength: Int
        /// The SOA record after its owner name (type, class, TTL, length, data).
        var soaOffset: Int
        var soaLength: Int
    }

    /// Outcome of looking a question name up.
    enum Match {
        /// The name exists here (with or without data): its record, valid while the table is.
        case name(DNSRecordShard.Record)
        /// The name does not exist but lies below an owned name: NXDOMAIN with that zone's SOA.
        case below(zone: Int)
        /// Not ours: forward it.
        case notOwned
    }

    let shards: [DNSRecordShard]
    /// The shards' lookup views side by side (64 × 16 bytes, so it stays in cache), read by
    /// every query instead of the shard objects.
    private let directory: UnsafeMutableBufferPointer<DNSRecordShard.View>
    /// The zones' SOA records, in memory allocated once and freed in `deinit`.
    let zoneArena: UnsafeRawBufferPointer
    let zones: UnsafeBufferPointer<Zone>
    let origins: [DNSName]
    /// Bit n set when some name has n labels; ancestors of other depths are not probed.
    private let depthBits: (UInt64, UInt64)
    /// The hashes of the last labels of every name (a handful: `local`, `arpa`), or nil
    /// when there are too many to be worth checking or the root itself is owned. A question
    /// whose last label is not among them cannot be, or be below, an owned name, so it is
    /// forwarded without touching the shards: the common case of a forwarded query costs
    /// no cache miss in the table.
    private let topLabelHashes: (UInt64, UInt64, UInt64, UInt64)?

    /// How many names (including empty non-terminals) the table holds.
    public let nameCount: Int

    /// Bytes the table's shards hold (hash slots and records), for logs and sizing;
    /// shards shared with another table (after a patch) count in both.
    public var byteCount: Int { shards.reduce(0) { $0 + $1.byteCount } }

    /// An empty table: owns nothing, forwards everything.
    public convenience init() {
        self.init(zones: DNSTableBuilder.Zones(), shards: (0..<Self.shardCount).map { _ in DNSRecordShard.make([]) })
    }

    /// Builds the table.
    ///
    /// - Throws: ``DNSWireError/messageTooLarge`` when the records of one name and type
    ///   cannot fit a DNS message.
    ///   For a large table built from many parts, ``DNSRecordTableBuilder`` avoids holding
    ///   the whole content at once.
    public convenience init(_ content: DNSTableContent) throws {
        var builder = DNSRecordTableBuilder(zones: content.zones)
        try builder.add(content)
        let (zones, shards) = builder.finish()
        self.init(zones: zones, shards: shards)
    }

    init(zones: DNSTableBuilder.Zones, shards: [DNSRecordShard]) {
        let arena = UnsafeMutableRawBufferPointer.allocate(byteCount: max(zones.arena.count, 1), alignment: 8)
        arena.copyBytes(from: zones.arena)
        zoneArena = UnsafeRawBufferPointer(rebasing: arena[0..<zones.arena.count])
        let zoneBuffer = UnsafeMutableBufferPointer<Zone>.allocate(capacity: max(zones.zones.count, 1))
        _ = zoneBuffer.initialize(from: zones.zones)
        self.zones = UnsafeBufferPointer(rebasing: zoneBuffer[0..<zones.zones.count])
        origins = zones.origins
        self.shards = shards
        directory = .allocate(capacity: shards.count)
        _ = directory.initialize(from: shards.map(\.view))
        depthBits = shards.reduce((0, 0)) { ($0.0 | $1.depthBits.0, $0.1 | $1.depthBits.1) }
        let tops = Array(shards.reduce(into: Set<UInt64>()) { $0.formUnion($1.topLabelHashes) })
        if depthBits.0 & 1 == 0, !tops.isEmpty, tops.count <= 4 {
            // Unused places repeat the first hash.
            topLabelHashes = (tops[0], tops.count > 1 ? tops[1] : tops[0], tops.count > 2 ? tops[2] : tops[0], tops.count > 3 ? tops[3] : tops[0])
        } else {
            topLabelHashes = nil
        }
        nameCount = shards.reduce(0) { $0 + $1.count }
    }

    deinit {
        directory.deallocate()
        zoneArena.deallocate()
        zones.deallocate()
    }

    /// A table like this one with the names in `removed` gone and the names of `added`
    /// in (replacing same-named ones). Only the shards holding those names are rebuilt; the
    /// others are shared. The zones are replaced by `added.zones` (e.g. a new SOA serial).
    ///
    /// - Throws: ``DNSTableError/zonesChanged`` when `added.zones` do not have this table's
    ///   origins in the same order (build a new table instead), or
    ///   ``DNSWireError/messageTooLarge`` as ``init(_:)``.
    public func patched(removing removed: [DNSName], adding added: DNSTableContent) throws -> DNSRecordTable {
        try patched(removing: removed, adding: [DNSTablePart(added)], zones: added.zones)
    }

    /// Like ``patched(removing:adding:)``, with the added names given as parts, each
    /// encoded on its own and possibly with a head (see ``DNSRecordTableBuilder/add(_:head:)``).
    /// The parts' own `zones` are ignored; `zones` replace the table's.
    public func patched(removing removed: [DNSName], adding parts: [DNSTablePart], zones newZones: [DNSZone]) throws -> DNSRecordTable {
        let zones = DNSTableBuilder.zones(newZones)
        guard zones.origins == origins else { throw DNSTableError.zonesChanged }
        var names: [DNSEncodedName] = []
        for part in parts { names += try DNSTableBuilder.encode(part.content, origins: zones.origins, head: part.head) }
        var dropping = [[[UInt8]]](repeating: [], count: Self.shardCount)
        var adding = [[DNSEncodedName]](repeating: [], count: Self.shardCount)
        var touched = Set<Int>()
        for name in removed {
            let key = name.lowercased().wire
            let shard = Self.shard(of: key.withUnsafeBytes { NameHash.hash($0, from: 0, count: $0.count) })
            dropping[shard].append(key)
            touched.insert(shard)
        }
        for name in names {
            let shard = Self.shard(of: name.hash)
            dropping[shard].append(name.key)
            adding[shard].append(name)
            touched.insert(shard)
        }
        var shards = self.shards
        for index in touched {
            // Untouched names are copied as bytes; only the added ones are written anew.
            var run: [UInt8] = []
            shards[index].appendRecords(dropping: dropping[index], to: &run)
            for name in adding[index] { DNSRecordShard.append(name, to: &run) }
            shards[index] = DNSRecordShard.make(run)
        }
        return DNSRecordTable(zones: zones, shards: shards)
    }

    /// The names of the part whose head is `head` (the head first), as given when it was
    /// added with that head; nil when `head` is not in the table. A head added without
    /// companions (or by an older build of the table) lists only itself.
    public func partNames(head: DNSName) -> [DNSName]? {
        let key = head.lowercased().wire
        return key.withUnsafeBytes { bytes -> [DNSName]? in
            let hash = NameHash.hash(bytes, from: 0, count: bytes.count)
            guard let record = shards[Self.shard(of: hash)].find(bytes, start: 0, length: bytes.count, hash: hash) else { return nil }
            return [DNSName(uncheckedWire: key)] + DNSEncodedName.names(inCompanions: record.companions, head: key)
        }
    }

    /// Whether `name` exists in the table (with data or as an empty non-terminal).
    public func contains(_ name: DNSName) -> Bool {
        name.wire.withUnsafeBytes { bytes in
            let hash = NameHash.hash(bytes, from: 0, count: bytes.count)
            return shards[Self.shard(of: hash)].find(bytes, start: 0, length: bytes.count, hash: hash) != nil
        }
    }

    @inline(__always)
    static func shard(of hash: UInt64) -> Int { Int(truncatingIfNeeded: hash >> 58) & (shardCount - 1) }

    /// Classifies a question name: an owned name, a missing name below an owned one, or a
    /// name to forward. `labelCount` is the number of labels of the name.
    func match(_ packet: UnsafeRawBufferPointer, start: Int, length: Int, labelCount: Int) -> Match {
        if nameCount == 0 { return .notOwned }
        if let tops = topLabelHashes {
            // The question's last label (label lengths were checked when the query was read).
            guard labelCount > 0 else { return .notOwned }
            var offset = start
            for _ in 1..<labelCount { offset += Int(packet[offset]) + 1 }
            guard offset < start + length else { return .notOwned }
            let top = NameHash.hash(packet, from: offset, count: Int(packet[offset]) + 1)
            guard top == tops.0 || top == tops.1 || top == tops.2 || top == tops.3 else { return .notOwned }
        }
        let hash = NameHash.hash(packet, from: start, count: length)
        if let record = directory[Self.shard(of: hash)].find(packet, start: start, length: length, hash: hash) { return .name(record) }
        var offset = start
        var depth = labelCount
        while depth > 0 {
            offset += Int(packet[offset]) + 1
            depth -= 1
            let present = depth < 64 ? depthBits.0 & (1 << UInt64(depth)) != 0 : depthBits.1 & (1 << UInt64(depth - 64)) != 0
            guard present else { continue }
            let suffixLength = start + length - offset
            let suffixHash = NameHash.hash(packet, from: offset, count: suffixLength)
            if let record = directory[Self.shard(of: suffixHash)].find(packet, start: offset, length: suffixLength, hash: suffixHash) {
                return .below(zone: record.zone)
            }
        }
        return .notOwned
    }
}

/// Names given to a table together: one mirrored service's, say.
public struct DNSTablePart: Sendable {
    public var content: DNSTableContent
    /// The name under which the table lists the part's other names, or nil.
    public var head: DNSName?

    public init(_ content: DNSTableContent, head: DNSName? = nil) {
        self.content = content
        self.head = head
    }
}

/// Why a table could not be patched.
public enum DNSTableError: Error, CustomStringConvertible {
    /// The zone origins differ from the table's: zone indexes would be wrong.
    case zonesChanged

    public var description: String {
        switch self {
        case .zonesChanged: "the zones changed; build a new record table instead of patching"
        }
    }
}
