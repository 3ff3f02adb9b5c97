/// Turns a ``DNSTableContent`` into the flat arrays a ``DNSRecordTable`` serves from:
/// owned names, empty non-terminals between them, precomputed answers per type (and for
/// ANY), and each zone's SOA.
struct DNSTableBuilder {
    struct Built {
        var arena: [UInt8] = []
        var entries: [DNSRecordTable.Entry] = []
        var rrsets: [DNSRecordTable.RRSet] = []
        var zones: [DNSRecordTable.Zone] = []
        /// Label count of each entry's name.
        var depths: [Int] = []
    }

    private let content: DNSTableContent

    init(_ content: DNSTableContent) {
        self.content = content
    }

    func build() throws -> Built {
        var built = Built()
        var zoneIndex: [DNSName: Int] = [:]
        for zone in content.zones {
            let origin = zone.origin.lowercased()
            guard zoneIndex[origin] == nil else { continue }
            zoneIndex[origin] = built.zones.count
            built.zones.append(Self.appendSOA(zone, origin: origin, to: &built.arena))
        }

        // Names in first-seen order, with their records.
        var order: [DNSName] = []
        var recordsByName: [DNSName: [DNSRecord]] = [:]
        func add(_ name: DNSName) {
            if recordsByName[name] == nil {
                recordsByName[name] = []
                order.append(name)
            }
        }
        let apexes = Set(content.ownedNames.map { $0.lowercased() })
        for name in content.ownedNames { add(name.lowercased()) }
        for record in content.records {
            var normalized = record
            normalized.name = record.name.lowercased()
            add(normalized.name)
            recordsByName[normalized.name, default: []].append(normalized)
        }
        // Empty non-terminals: names between a record owner and the owned name above it
        // (`_tcp.bar-paris…` between `_http._tcp.bar-paris…` and `bar-paris…`).
        for name in order where !apexes.contains(name) {
            var chain: [DNSName] = []
            var candidate = name.parent
            while let parent = candidate, !apexes.contains(parent) {
                chain.append(parent)
                candidate = parent.parent
            }
            if candidate != nil { chain.forEach(add) }
        }

        for name in order {
            let records = recordsByName[name] ?? []
            var entry = DNSRecordTable.Entry(hash: 0, keyOffset: built.arena.count, keyLength: name.wire.count,
                                             rrsetStart: built.rrsets.count, rrsetCount: 0, zone: Self.zone(of: name, in: zoneIndex))
            built.arena.append(contentsOf: name.wire)
            entry.hash = name.wire.withUnsafeBytes { NameHash.hash($0, from: 0, count: $0.count) }
            var types: [DNSRecordType] = []
            for record in records where !types.contains(record.type) { types.append(record.type) }
            for type in types {
                built.rrsets.append(try Self.appendAnswers(records.filter { $0.type == type }, type: type, name: name, to: &built.arena))
            }
            if !records.isEmpty {
                built.rrsets.append(try Self.appendAnswers(records, type: .any, name: name, to: &built.arena))
            }
            entry.rrsetCount = built.rrsets.count - entry.rrsetStart
            built.entries.append(entry)
            built.depths.append(name.labelCount)
        }
        return built
    }

    /// The innermost zone containing `name`, or -1.
    private static func zone(of name: DNSName, in zones: [DNSName: Int]) -> Int {
        var candidate: DNSName? = name
        while let current = candidate {
            if let index = zones[current] { return index }
            candidate = current.parent
        }
        return -1
    }

    /// Encodes `records` as the answer section of a response to a question for `name`
    /// starting at byte 12, and appends the bytes after that question to the arena.
    private static func appendAnswers(_ records: [DNSRecord], type: DNSRecordType, name: DNSName, to arena: inout [UInt8]) throws -> DNSRecordTable.RRSet {
        var writer = DNSMessageWriter()
        writer.append([UInt8](repeating: 0, count: DNSLimits.headerSize))
        try writer.append(name, compress: true)
        writer.append(UInt32(0))
        let prefix = writer.bytes.count
        for record in records { try writer.append(record) }
        guard records.count <= 65535 else { throw DNSWireError.messageTooLarge }
        let answer = writer.bytes[prefix...]
        defer { arena.append(contentsOf: answer) }
        return DNSRecordTable.RRSet(type: type.rawValue, count: UInt16(records.count), offset: arena.count, length: answer.count)
    }

    /// Appends a zone's SOA record minus its owner name; TTL and minimum are capped.
    private static func appendSOA(_ zone: DNSZone, origin: DNSName, to arena: inout [UInt8]) -> DNSRecordTable.Zone {
        var soa = zone.soa
        soa.minimum = min(soa.minimum, DNSRecordTable.maximumNegativeTTL)
        var writer = DNSMessageWriter()
        writer.append(DNSRecordType.soa.rawValue)
        writer.append(DNSClass.in.rawValue)
        writer.append(min(zone.ttl, DNSRecordTable.maximumNegativeTTL))
        writer.append(UInt16(soa.primaryServer.wire.count + soa.mailbox.wire.count + 20))
        writer.append(soa.primaryServer.wire)
        writer.append(soa.mailbox.wire)
        for value in [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum] { writer.append(value) }
        defer { arena.append(contentsOf: writer.bytes) }
        return DNSRecordTable.Zone(originLength: origin.wire.count, soaOffset: arena.count, soaLength: writer.bytes.count)
    }
}
