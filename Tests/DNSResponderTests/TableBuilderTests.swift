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
