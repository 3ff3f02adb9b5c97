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
        var origins: [DNSName] = []
        for zone in content.zones {
            let origin = zone.origin.lowercased()
            guard zoneIndex[origin] == nil else { continue }
            zoneIndex[origin] = built.zones.count
            origins.append(origin)
            built.zones.append(Self.appendSOA(zone, origin: origin, to: &built.arena))
        }

        // Names in first-seen order, with their records.
        var order: [DNSName] = []
        var recordsByName: [DNSName: [DNSRecord]] = [:]
        order.reserveCapacity(content.ownedNames.count + content.records.count)
        recordsByName.reserveCapacity(content.ownedNames.count + content.records.count)
        built.arena.reserveCapacity(content.records.count * 48)
        built.entries.reserveCapacity(content.ownedNames.count + content.records.count)
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
                                             rrsetStart: built.rrsets.count, rrsetCount: 0, zone: Self.zone(of: name, origins: origins))
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

    /// The innermost zone (index into `origins`) containing `name`, or -1.
    private static func zone(of name: DNSName, origins: [DNSName]) -> Int {
        var best = -1
        var bestLength = 0
        for (index, origin) in origins.enumerated() where origin.wire.count > bestLength && name.isSubdomain(of: origin) {
            best = index
            bestLength = origin.wire.count
        }
        return best
    }

    /// Encodes `records` as the answer section of a response to a question for `name`
    /// starting at byte 12, and appends the bytes after that question to the arena.
    ///
    /// Owner names are the pointer `0xC00C`; names in CNAME, PTR, NS and SOA data point at
    /// the longest suffix they share with the question (the only earlier name there is), so
    /// no per-answer compression table is needed.
    private static func appendAnswers(_ records: [DNSRecord], type: DNSRecordType, name: DNSName, to arena: inout [UInt8]) throws -> DNSRecordTable.RRSet {
        guard records.count <= 65535 else { throw DNSWireError.messageTooLarge }
        let start = arena.count
        for record in records {
            arena.append(contentsOf: [0xC0, 0x0C, UInt8(record.type.rawValue >> 8), UInt8(record.type.rawValue & 0xFF),
                                      UInt8(record.class.rawValue >> 8), UInt8(record.class.rawValue & 0xFF)])
            appendU32(record.ttl, to: &arena)
            let lengthOffset = arena.count
            arena.append(contentsOf: [0, 0])
            switch record.data {
            case .a(let bytes), .aaaa(let bytes), .opaque(_, let bytes):
                arena.append(contentsOf: bytes)
            case .cname(let target), .ptr(let target), .ns(let target):
                appendName(target, question: name, to: &arena)
            case let .srv(priority, weight, port, target):
                for value in [priority, weight, port] { arena.append(contentsOf: [UInt8(value >> 8), UInt8(value & 0xFF)]) }
                arena.append(contentsOf: target.wire)
            case .soa(let soa):
                appendName(soa.primaryServer, question: name, to: &arena)
                appendName(soa.mailbox, question: name, to: &arena)
                for value in [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum] { appendU32(value, to: &arena) }
            case .txt(let strings):
                for string in strings {
                    arena.append(UInt8(min(string.count, 255)))
                    arena.append(contentsOf: string.prefix(255))
                }
            }
            let length = arena.count - lengthOffset - 2
            guard length <= 65535, arena.count - start <= 65535 else { throw DNSWireError.messageTooLarge }
            arena[lengthOffset] = UInt8(length >> 8)
            arena[lengthOffset + 1] = UInt8(length & 0xFF)
        }
        return DNSRecordTable.RRSet(type: type.rawValue, count: UInt16(records.count), offset: start, length: arena.count - start)
    }

    private static func appendU32(_ value: UInt32, to arena: inout [UInt8]) {
        arena.append(contentsOf: [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)])
    }

    /// Writes `target`, ending in a pointer into the question name (at byte 12) when they
    /// share a suffix of at least one label.
    private static func appendName(_ target: DNSName, question: DNSName, to arena: inout [UInt8]) {
        var offset = 0
        while offset < target.wire.count - 1 {
            let suffixLength = target.wire.count - offset
            let questionOffset = question.wire.count - suffixLength
            if questionOffset >= 0, isLabelStart(questionOffset, in: question.wire),
               target.wire[offset...].elementsEqual(question.wire[questionOffset...], by: { DNSName.lowercase($0) == DNSName.lowercase($1) }) {
                arena.append(contentsOf: target.wire[0..<offset])
                let pointer = UInt16(0xC000) | UInt16(DNSLimits.headerSize + questionOffset)
                arena.append(contentsOf: [UInt8(pointer >> 8), UInt8(pointer & 0xFF)])
                return
            }
            offset += Int(target.wire[offset]) + 1
        }
        arena.append(contentsOf: target.wire)
    }

    private static func isLabelStart(_ position: Int, in wire: [UInt8]) -> Bool {
        var offset = 0
        while offset < position { offset += Int(wire[offset]) + 1 }
        return offset == position
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
