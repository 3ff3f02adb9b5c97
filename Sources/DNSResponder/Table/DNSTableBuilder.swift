/// Turns a ``DNSTableContent`` into what a ``DNSRecordTable`` serves from: each zone's SOA,
/// and for every owned name (and every empty non-terminal between a record owner and the
/// owned name above it) its answers per type, precomputed in wire form.
enum DNSTableBuilder {
    /// The zones, deduplicated by origin (first wins), with their SOA records in one arena.
    struct Zones {
        var origins: [DNSName] = []
        var arena: [UInt8] = []
        var zones: [DNSRecordTable.Zone] = []
    }

    static func zones(_ zones: [DNSZone]) -> Zones {
        var result = Zones()
        for zone in zones {
            let origin = zone.origin.lowercased()
            guard !result.origins.contains(origin) else { continue }
            result.origins.append(origin)
            result.zones.append(appendSOA(zone, origin: origin, to: &result.arena))
        }
        return result
    }

    /// Every name of `content`, encoded; zone indexes refer to `origins`.
    /// With `head` (one of the content's names), that name's record lists every other name
    /// of the content (``DNSEncodedName/companions``).
    static func encode(_ content: DNSTableContent, origins: [DNSName], head: DNSName? = nil) throws -> [DNSEncodedName] {
        // Names in first-seen order, with their records. A part of a few names (one
        // service) is grouped by linear search: cheaper than hashing for a handful.
        let small = content.ownedNames.count + content.records.count <= 16
        var order: [DNSName] = []
        var recordsByIndex: [[DNSRecord]] = []
        var indexByName: [DNSName: Int] = [:]
        order.reserveCapacity(content.ownedNames.count + content.records.count)
        if !small { indexByName.reserveCapacity(content.ownedNames.count + content.records.count) }
        @discardableResult
        func add(_ name: DNSName) -> Int {
            if small {
                if let index = order.firstIndex(of: name) { return index }
            } else if let index = indexByName[name] {
                return index
            }
            if !small { indexByName[name] = order.count }
            order.append(name)
            recordsByIndex.append([])
            return order.count - 1
        }
        let apexList = content.ownedNames.map { $0.lowercased() }
        let apexSet = small ? [] : Set(apexList)
        func isApex(_ name: DNSName) -> Bool { small ? apexList.contains(name) : apexSet.contains(name) }
        for name in apexList { add(name) }
        for record in content.records {
            var normalized = record
            normalized.name = record.name.lowercased()
            recordsByIndex[add(normalized.name)].append(normalized)
        }
        // Empty non-terminals: names between a record owner and the owned name above it
        // (`_tcp.bar-paris…` between `_http._tcp.bar-paris…` and `bar-paris…`).
        for name in order where !isApex(name) {
            var chain: [DNSName] = []
            var candidate = name.parent
            while let parent = candidate, !isApex(parent) {
                chain.append(parent)
                candidate = parent.parent
            }
            if candidate != nil { chain.forEach { add($0) } }
        }

        var encoded: [DNSEncodedName] = []
        encoded.reserveCapacity(order.count)
        for (index, name) in order.enumerated() {
            let records = index < recordsByIndex.count ? recordsByIndex[index] : []
            var types: [DNSRecordType] = []
            for record in records where !types.contains(record.type) { types.append(record.type) }
            var answers: [DNSEncodedName.AnswerSet] = []
            for type in types {
                answers.append(try encodeAnswers(records.filter { $0.type == type }, type: type, name: name))
            }
            // ANY is answered by concatenating these sets (each is position independent).
            guard answers.count <= 255, name.wire.count <= 255 else { throw DNSWireError.messageTooLarge }
            encoded.append(DNSEncodedName(key: name.wire, hash: name.wire.withUnsafeBytes { NameHash.hash($0, from: 0, count: $0.count) },
                                          labelCount: name.labelCount, zone: zone(of: name, origins: origins), answers: answers))
        }
        if let head, let index = encoded.firstIndex(where: { $0.key == head.lowercased().wire }) {
            encoded[index].companions = DNSEncodedName.companions(head: encoded[index].key, names: encoded.map(\.key))
            guard encoded[index].companions.count <= 65535 else { throw DNSWireError.messageTooLarge }
        }
        return encoded
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

    private static func encodeAnswers(_ records: [DNSRecord], type: DNSRecordType, name: DNSName) throws -> DNSEncodedName.AnswerSet {
        var bytes: [UInt8] = []
        let set = try appendAnswers(records, type: type, name: name, to: &bytes)
        return DNSEncodedName.AnswerSet(type: set.type, count: set.count, bytes: bytes)
    }

    /// Encodes `records` as the answer section of a response to a question for `name`
    /// starting at byte 12, and appends the bytes after that question to the arena.
    ///
    /// Owner names are the pointer `0xC00C`; names in CNAME, PTR, NS and SOA data point at
    /// the longest suffix they share with the question (the only earlier name there is), so
    /// no per-answer compression table is needed.
    private static func appendAnswers(_ records: [DNSRecord], type: DNSRecordType, name: DNSName,
                                      to arena: inout [UInt8]) throws -> (type: UInt16, count: UInt16) {
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
        return (type.rawValue, UInt16(records.count))
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
