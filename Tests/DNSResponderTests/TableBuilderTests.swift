import Testing
@testable import DNSResponder

@Suite("record table built part by part")
struct TableBuilderTests {
    @Test("a table built one service at a time answers exactly like one built from the merged content")
    func partsEqualWhole() throws {
        let services = try (0..<300).map { try TablePatchTests.service($0, address: 1) }
        let whole = try DNSRecordTable(TablePatchTests.merged(services, zones: TablePatchTests.zones))
        var builder = DNSRecordTableBuilder(zones: TablePatchTests.zones)
        for part in services { try builder.add(part) }
        #expect(builder.repeatedNames.isEmpty)
        let parts = builder.build()
        #expect(parts.nameCount == whole.nameCount)
        #expect(parts.nameCount == 900)
        let questions: [(String, DNSRecordType)] = [
            ("svc0.ns.svc.cluster.local", .a), ("SVC299.ns.svc.cluster.local", .a), ("_http._tcp.svc42.ns.svc.cluster.local", .srv),
            ("_tcp.svc42.ns.svc.cluster.local", .a), ("svc42.ns.svc.cluster.local", .aaaa), ("nope.svc42.ns.svc.cluster.local", .a),
            ("svc300.ns.svc.cluster.local", .a), ("svc1.ns.svc.cluster.local", .any), ("example.com", .a),
        ]
        for (name, type) in questions {
            let query = try TableFixture.query(name, type)
            #expect(try TableFixture.process(query, table: parts).raw == TableFixture.process(query, table: whole).raw, "\(name) \(type)")
        }
    }

    @Test("a name two parts give gets the records of both, in order, and is reported as repeated")
    func repeatedName() throws {
        let shared = try DNSName("1.0.0.10.in-addr.arpa")
        func part(_ service: String) throws -> DNSTableContent {
            let name = try DNSName("\(service).ns.svc.cluster.local")
            return DNSTableContent(ownedNames: [name, shared], records: [
                DNSRecord(name: name, ttl: 5, data: .a([10, 0, 0, 1])),
                DNSRecord(name: shared, ttl: 5, data: .ptr(name)),
            ])
        }
        let zones = TablePatchTests.zones + [try DNSZone.standard(origin: DNSName("in-addr.arpa"), serial: 1, negativeTTL: 5)]
        var builder = DNSRecordTableBuilder(zones: zones)
        try builder.add(part("one"))
        try builder.add(part("two"))
        #expect(builder.repeatedNames == [shared])
        let parts = builder.build()
        let whole = try DNSRecordTable(DNSTableContent(zones: zones, ownedNames: try part("one").ownedNames + part("two").ownedNames,
                                                       records: try part("one").records + part("two").records))
        #expect(parts.nameCount == 3)
        let query = try TableFixture.query("1.0.0.10.in-addr.arpa", .ptr)
        let reply = try #require(try TableFixture.process(query, table: parts).reply)
        #expect(reply.answers.map(\.data) == [.ptr(try DNSName("one.ns.svc.cluster.local")), .ptr(try DNSName("two.ns.svc.cluster.local"))])
        #expect(try TableFixture.process(query, table: parts).raw == TableFixture.process(query, table: whole).raw)
    }
}

@Suite("parts removed by their head")
struct TablePartTests {
    /// A service with an SRV (and so a `_tcp` non-terminal) and a PTR outside its subtree.
    static func service(_ index: Int, address: UInt8) throws -> (DNSTableContent, DNSName) {
        var content = try TablePatchTests.service(index, address: address)
        let name = content.ownedNames[0]
        let reverse = try DNSName("\(address).\(index % 256).0.10.in-addr.arpa")
        content.ownedNames.append(reverse)
        content.records.append(DNSRecord(name: reverse, ttl: 5, data: .ptr(name)))
        return (content, name)
    }

    static let zones = TablePatchTests.zones + [(try? DNSZone.standard(origin: DNSName("in-addr.arpa"), serial: 1, negativeTTL: 5))].compactMap { $0 }

    @Test("a head lists its part's names; patching by those names equals a rebuild")
    func removeByHead() throws {
        let services = try (0..<200).map { try Self.service($0, address: 1) }
        var builder = DNSRecordTableBuilder(zones: Self.zones)
        for (content, head) in services { try builder.add(content, head: head) }
        let table = builder.build()

        let names = try #require(table.partNames(head: try DNSName("SVC5.ns.svc.cluster.local")))
        #expect(Set(names) == Set(try ["svc5.ns.svc.cluster.local", "_tcp.svc5.ns.svc.cluster.local",
                                       "_http._tcp.svc5.ns.svc.cluster.local", "1.5.0.10.in-addr.arpa"].map(DNSName.init)))
        #expect(table.partNames(head: try DNSName("svc999.ns.svc.cluster.local")) == nil)

        // Change service 5's address (new PTR name), remove service 6, using only the heads.
        let changed = try Self.service(5, address: 2)
        let removed = try #require(table.partNames(head: services[5].1)) + #require(table.partNames(head: services[6].1))
        let patched = try table.patched(removing: removed, adding: [DNSTablePart(changed.0, head: changed.1)], zones: Self.zones)
        var after = services
        after[5] = changed
        after.remove(at: 6)
        var rebuilt = DNSRecordTableBuilder(zones: Self.zones)
        for (content, head) in after { try rebuilt.add(content, head: head) }
        let expected = rebuilt.build()
        #expect(patched.nameCount == expected.nameCount)
        for (name, type) in [("svc5.ns.svc.cluster.local", DNSRecordType.a), ("1.5.0.10.in-addr.arpa", .ptr), ("2.5.0.10.in-addr.arpa", .ptr),
                             ("svc6.ns.svc.cluster.local", .a), ("_tcp.svc6.ns.svc.cluster.local", .a), ("1.6.0.10.in-addr.arpa", .ptr),
                             ("_http._tcp.svc5.ns.svc.cluster.local", .srv), ("svc7.ns.svc.cluster.local", .any)] {
            let query = try TableFixture.query(name, type)
            #expect(try TableFixture.process(query, table: patched).raw == TableFixture.process(query, table: expected).raw, "\(name) \(type)")
        }
        let expectedNames = Set(try ["svc5.ns.svc.cluster.local", "_tcp.svc5.ns.svc.cluster.local",
                                     "_http._tcp.svc5.ns.svc.cluster.local", "2.5.0.10.in-addr.arpa"].map(DNSName.init))
        #expect(patched.partNames(head: changed.1).map(Set.init) == expectedNames)
    }
}
