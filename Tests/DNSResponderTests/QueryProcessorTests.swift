import NIOCore
import Testing
@testable import DNSResponder

@Suite("answers for owned names, decisions for the rest")
struct QueryProcessorTests {
    let table: DNSRecordTable

    init() throws { table = try TableFixture.table() }

    @Test("A for an owned name: AA, RA, both addresses, question echoed in its case")
    func answer() throws {
        let (reply, _, _) = try TableFixture.process(try TableFixture.query("BAR-Paris.Default.svc.cluster.local", .a), table: table)
        let message = try #require(reply)
        #expect(message.header.id == 0x4242)
        #expect(message.header.isResponse && message.header.isAuthoritative && message.header.recursionAvailable && message.header.recursionDesired)
        #expect(message.responseCode == .noError)
        #expect(message.questions.first?.name.description == "BAR-Paris.Default.svc.cluster.local.")
        #expect(message.answers.map(\.data) == [.a([10, 112, 0, 10]), .a([10, 112, 0, 11])])
        #expect(message.answers.allSatisfy { $0.ttl == 5 })
    }

    @Test("SRV, PTR, TXT, per-pod hostname and ANY")
    func otherTypes() throws {
        let srv = try #require(try TableFixture.process(try TableFixture.query("_http._tcp." + TableFixture.service, .srv), table: table).reply)
        #expect(srv.answers.map(\.data) == [.srv(priority: 0, weight: 100, port: 80, target: try DNSName(TableFixture.service))])
        let ptr = try #require(try TableFixture.process(try TableFixture.query("10.0.112.10.in-addr.arpa", .ptr), table: table).reply)
        #expect(ptr.answers.map(\.data) == [.ptr(try DNSName(TableFixture.service))])
        let txt = try #require(try TableFixture.process(try TableFixture.query("dns-version.clusterset.local", .txt), table: table).reply)
        #expect(txt.answers.map(\.data) == [.txt([Array("1.0.0".utf8)])])
        let pod = try #require(try TableFixture.process(try TableFixture.query("baz-0." + TableFixture.service, .a), table: table).reply)
        #expect(pod.answers.map(\.data) == [.a([10, 20, 1, 5])])
        let any = try #require(try TableFixture.process(try TableFixture.query(TableFixture.service, .any), table: table).reply)
        #expect(any.answers.count == 2)
    }

    @Test("owned name without the type: NODATA with the zone SOA, negative TTL capped at 5 s")
    func noData() throws {
        for name in [TableFixture.service, "empty-paris.default.svc.cluster.local", "_tcp." + TableFixture.service] {
            let message = try #require(try TableFixture.process(try TableFixture.query(name, .aaaa), table: table).reply)
            #expect(message.responseCode == .noError, "\(name)")
            #expect(message.header.isAuthoritative)
            #expect(message.answers.isEmpty)
            let soa = try #require(message.authorities.first)
            #expect(soa.name == (try DNSName("cluster.local")))
            guard case .soa(let data) = soa.data else { Issue.record("authority is not SOA"); continue }
            #expect(soa.ttl <= 5 && data.minimum <= 5)
        }
    }

    @Test("a missing name below an owned name: NXDOMAIN with SOA")
    func nxdomain() throws {
        for name in ["nope." + TableFixture.service, "a.b.c." + TableFixture.service, "x.10.0.112.10.in-addr.arpa"] {
            let message = try #require(try TableFixture.process(try TableFixture.query(name, .a), table: table).reply)
            #expect(message.responseCode == .nameError, "\(name)")
            #expect(message.header.isAuthoritative)
            #expect(message.authorities.first?.type == .soa)
        }
    }

    @Test("names not owned are forwarded, including siblings and parents of owned names")
    func forwarded() throws {
        for name in ["www.example.com", "foo-paris.default.svc.cluster.local", "default.svc.cluster.local", "cluster.local", "."] {
            let (_, _, result) = try TableFixture.process(try TableFixture.query(name, .a), table: table)
            guard case .forward(let query) = result else { Issue.record("\(name) not forwarded"); continue }
            #expect(query.questionEnd == 12 + (try DNSName(name)).wire.count + 4)
        }
    }

    @Test("EDNS: OPT echoed with 1232; BADVERS for version 1; DO echoed")
    func edns() throws {
        let withOPT = try #require(try TableFixture.process(try TableFixture.query(TableFixture.service, .a, edns: DNSEDNS(udpPayloadSize: 4096, dnssecOK: true)), table: table).reply)
        #expect(withOPT.edns?.udpPayloadSize == 1232)
        #expect(withOPT.edns?.dnssecOK == true)
        let without = try #require(try TableFixture.process(try TableFixture.query(TableFixture.service, .a), table: table).reply)
        #expect(without.edns == nil)
        let version1 = try #require(try TableFixture.process(try TableFixture.query(TableFixture.service, .a, edns: DNSEDNS(version: 1)), table: table).reply)
        #expect(version1.responseCode == .badVersion)
        #expect(version1.edns?.version == 0)
        #expect(version1.answers.isEmpty)
    }

    @Test("TC=1 past 512 bytes without EDNS or past the advertised size; TCP gets everything")
    func truncation() throws {
        let name = "big-paris.default.svc.cluster.local"
        let udp = try TableFixture.process(try TableFixture.query(name, .txt), table: table)
        #expect(udp.reply?.header.isTruncated == true)
        #expect(udp.reply?.answers.isEmpty == true)
        #expect(udp.raw.count <= 512)
        let small = try TableFixture.process(try TableFixture.query(name, .txt, edns: DNSEDNS(udpPayloadSize: 600)), table: table)
        #expect(small.reply?.header.isTruncated == true)
        let large = try TableFixture.process(try TableFixture.query(name, .txt, edns: DNSEDNS(udpPayloadSize: 1232)), table: table)
        #expect(large.reply?.header.isTruncated == false)
        #expect(large.reply?.answers.count == 1)
        let tcp = try TableFixture.process(try TableFixture.query(name, .txt), table: table, overTCP: true)
        #expect(tcp.reply?.header.isTruncated == false)
    }

    @Test("malformed queries: FORMERR when answerable, NOTIMP for other opcodes, silence for responses and runts")
    func malformed() throws {
        let good = try TableFixture.query(TableFixture.service, .a)
        let trailing = try #require(try TableFixture.process(good + [0], table: table).reply)
        #expect(trailing.responseCode == .formatError)
        #expect(trailing.questions.count == 1)
        var noQuestion = Array(good.prefix(12))
        noQuestion[5] = 0
        #expect(try #require(try TableFixture.process(noQuestion, table: table).reply).responseCode == .formatError)
        var twoQuestions = good
        twoQuestions[5] = 2
        #expect(try #require(try TableFixture.process(twoQuestions, table: table).reply).responseCode == .formatError)
        var inflated = good
        inflated[7] = 200
        #expect(try #require(try TableFixture.process(inflated, table: table).reply).responseCode == .formatError)
        var status = good
        status[2] |= 0x10  // opcode 2 (STATUS)
        let notImp = try #require(try TableFixture.process(status, table: table).reply)
        #expect(notImp.responseCode == .notImplemented)
        var response = good
        response[2] |= 0x80
        guard case .drop = try TableFixture.process(response, table: table).result else { Issue.record("response answered"); return }
        guard case .drop = try TableFixture.process(Array(good.prefix(11)), table: table).result else { Issue.record("runt answered"); return }
        var pointerQuestion = Array(good.prefix(12))
        pointerQuestion += [0xC0, 12, 0, 1, 0, 1]
        #expect(try #require(try TableFixture.process(pointerQuestion, table: table).reply).responseCode == .formatError)
    }

    @Test("unknown class for an owned name is refused; zone transfers are refused")
    func classes() throws {
        let chaos = try #require(try TableFixture.process(try TableFixture.query(TableFixture.service, .a, class: .chaos), table: table).reply)
        #expect(chaos.responseCode == .refused)
        let axfr = try #require(try TableFixture.process(try TableFixture.query(TableFixture.service, .axfr), table: table).reply)
        #expect(axfr.responseCode == .refused)
    }

    @Test("clients outside --allow get REFUSED; inside get answers")
    func access() throws {
        let outside = try SocketAddress(ipAddress: "203.0.113.9", port: 5353)
        let refused = try #require(try TableFixture.process(try TableFixture.query(TableFixture.service, .a), table: table, source: outside).reply)
        #expect(refused.responseCode == .refused)
        #expect(refused.answers.isEmpty)
        let custom = try DNSAccessList(["203.0.113.0/24"])
        let allowed = try #require(try TableFixture.process(try TableFixture.query(TableFixture.service, .a), table: table, source: outside, access: custom).reply)
        #expect(allowed.responseCode == .noError)
        let loopback = try #require(try TableFixture.process(try TableFixture.query(TableFixture.service, .a), table: table, access: custom).reply)
        #expect(loopback.responseCode == .refused)
    }

    @Test("no table yet: SERVFAIL")
    func notReady() throws {
        let message = try #require(try TableFixture.process(try TableFixture.query(TableFixture.service, .a), table: nil).reply)
        #expect(message.responseCode == .serverFailure)
    }
}

@Suite("client access ranges")
struct AccessListTests {
    @Test("default ranges: loopback, private, link-local; v4-mapped v6 checked as v4")
    func defaults() throws {
        let list = DNSAccessList.standard()
        for allowed in ["127.0.0.1", "10.1.2.3", "172.31.255.1", "192.168.0.9", "169.254.20.10", "::1", "fd00::5", "fe80::1", "::ffff:10.0.0.1"] {
            #expect(list.allows(try SocketAddress(ipAddress: allowed, port: 1)), "\(allowed)")
        }
        for denied in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "::ffff:8.8.8.8", "100.64.0.1"] {
            #expect(!list.allows(try SocketAddress(ipAddress: denied, port: 1)), "\(denied)")
        }
    }

    @Test("bad ranges are named")
    func errors() {
        #expect(throws: DNSAccessListError.self) { try DNSAccessList(["10.0.0.0/33"]) }
        #expect(throws: DNSAccessListError.self) { try DNSAccessList(["nonsense"]) }
    }
}
