import Testing
@testable import DNSResponder

@Suite("record table patches")
struct TablePatchTests {
    static let zones = [try? DNSZone.standard(origin: DNSName("cluster.local"), serial: 1, negativeTTL: 5)].compactMap { $0 }

    /// One service's names: `svcN.ns.svc.cluster.local` A, its SRV and `_tcp` non-terminal.
    static func service(_ index: Int, address: UInt8) throws -> DNSTableContent {
        let name = try DNSName("svc\(index).ns.svc.cluster.local")
        let proto = try name.prepending("_tcp")
        return DNSTableContent(ownedNames: [name, proto], records: [
            DNSRecord(name: name, ttl: 5, data: .a([10, 0, UInt8(index % 256), address])),
            DNSRecord(name: try proto.prepending("_http"), ttl: 5, data: .srv(priority: 0, weight: 100, port: 80, target: name)),
        ])
    }

    static func merged(_ parts: [DNSTableContent], zones: [DNSZone]) -> DNSTableContent {
        DNSTableContent(zones: zones, ownedNames: parts.flatMap(\.ownedNames), records: parts.flatMap(\.records))
    }

    static func names(_ part: DNSTableContent) -> [DNSName] { part.ownedNames + part.records.map(\.name) }

    @Test("a patched table answers exactly like one built from scratch, and shares untouched shards")
    func patchEqualsRebuild() throws {
        let services = try (0..<300).map { try Self.service($0, address: 1) }
        let original = try DNSRecordTable(Self.merged(services, zones: Self.zones))

        // Remove service 7, change service 8's address, add service 300.
        var after = services
        after[8] = try Self.service(8, address: 2)
        after.append(try Self.service(300, address: 1))
        after.remove(at: 7)
        let newZones = [try DNSZone.standard(origin: DNSName("cluster.local"), serial: 2, negativeTTL: 5)]
        let patched = try original.patched(removing: Self.names(services[7]) + Self.names(services[8]),
                                           adding: Self.merged([after[7], after.last].compactMap { $0 }, zones: newZones))
        let rebuilt = try DNSRecordTable(Self.merged(after, zones: newZones))
        #expect(patched.nameCount == rebuilt.nameCount)

        let questions: [(String, DNSRecordType)] = [
            ("svc7.ns.svc.cluster.local", .a), ("svc8.ns.svc.cluster.local", .a), ("svc300.ns.svc.cluster.local", .a),
            ("_http._tcp.svc300.ns.svc.cluster.local", .srv), ("_tcp.svc7.ns.svc.cluster.local", .a), ("_tcp.svc8.ns.svc.cluster.local", .a),
            ("svc9.ns.svc.cluster.local", .aaaa), ("x.svc8.ns.svc.cluster.local", .a), ("svc1.ns.svc.cluster.local", .any),
        ]
        for (name, type) in questions {
            let query = try TableFixture.query(name, type)
            let fromPatch = try TableFixture.process(query, table: patched)
            let fromBuild = try TableFixture.process(query, table: rebuilt)
            #expect(fromPatch.raw == fromBuild.raw, "\(name) \(type)")
        }
        // The removed service's name is no longer owned: it goes upstream.
        guard case .forward = try TableFixture.process(try TableFixture.query("svc7.ns.svc.cluster.local", .a), table: patched).result else {
            Issue.record("a removed name is still answered")
            return
        }
        let eight = try #require(try TableFixture.process(try TableFixture.query("svc8.ns.svc.cluster.local", .a), table: patched).reply)
        #expect(eight.answers.map(\.data) == [.a([10, 0, 8, 2])])
        // 9 names changed (3 per service), so at most 9 shards were rebuilt.
        #expect(zip(original.shards, patched.shards).filter { $0 === $1 }.count >= DNSRecordTable.shardCount - 9)
    }

    @Test("patching with different zone origins is refused")
    func zonesChanged() throws {
        let table = try DNSRecordTable(Self.merged([try Self.service(1, address: 1)], zones: Self.zones))
        let other = [try DNSZone.standard(origin: DNSName("example.local"), serial: 1, negativeTTL: 5)]
        #expect(throws: DNSTableError.self) { try table.patched(removing: [], adding: DNSTableContent(zones: other)) }
        #expect(table.contains(try DNSName("SVC1.ns.svc.cluster.local")))
        #expect(!table.contains(try DNSName("svc2.ns.svc.cluster.local")))
    }
}
