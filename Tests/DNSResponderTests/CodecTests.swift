import Testing
@testable import DNSResponder

@Suite("DNS wire format")
struct CodecTests {
    static func name(_ text: String) throws -> DNSName { try DNSName(text) }

    @Test("every supported record type survives encode and parse, with compression")
    func roundTrip() throws {
        let owner = try Self.name("Bar-Paris.default.svc.cluster.local")
        var header = DNSHeader(id: 0xBEEF)
        header.isResponse = true
        header.isAuthoritative = true
        header.recursionAvailable = true
        let message = DNSMessage(
            header: header,
            questions: [DNSQuestion(name: owner, type: .any)],
            answers: [
                DNSRecord(name: owner, ttl: 5, data: .a([10, 112, 0, 10])),
                DNSRecord(name: owner, ttl: 5, data: .aaaa([0xfd, 0] + [UInt8](repeating: 0, count: 13) + [1])),
                DNSRecord(name: try Self.name("_http._tcp.bar-paris.default.svc.cluster.local"), ttl: 5,
                          data: .srv(priority: 0, weight: 100, port: 80, target: owner)),
                DNSRecord(name: try Self.name("10.0.112.10.in-addr.arpa"), ttl: 5, data: .ptr(owner)),
                DNSRecord(name: try Self.name("alias.cluster.local"), ttl: 5, data: .cname(owner)),
                DNSRecord(name: try Self.name("dns-version.clusterset.local"), ttl: 5, data: .txt([Array("1.0.0".utf8), []])),
                DNSRecord(name: owner, ttl: 9, data: .opaque(type: DNSRecordType(rawValue: 65280), data: [1, 2, 3])),
            ],
            authorities: [DNSRecord(name: try Self.name("cluster.local"), ttl: 5, data: .soa(DNSSOAData(
                primaryServer: try Self.name("ns.dns.cluster.local"), mailbox: try Self.name("hostmaster.cluster.local"), serial: 7)))],
            edns: DNSEDNS(udpPayloadSize: 1232, dnssecOK: true, options: [DNSEDNSOption(code: 10, data: [1, 2, 3, 4, 5, 6, 7, 8])])
        )
        let bytes = try message.encoded()
        let parsed = try DNSMessage(parsing: bytes)
        #expect(parsed.header.id == 0xBEEF)
        #expect(parsed.questions == message.questions)
        #expect(parsed.answers == message.answers)
        #expect(parsed.authorities == message.authorities)
        #expect(parsed.edns == message.edns)
        // The question keeps its spelling; compression made the message far smaller than
        // the names written out in full.
        #expect(parsed.questions[0].name.description == "Bar-Paris.default.svc.cluster.local.")
        let uncompressed = message.answers.reduce(0) { $0 + $1.name.wire.count }
        #expect(bytes.count < 12 + uncompressed + 200)
    }

    @Test("names: text round trip, case-insensitive equality, escapes, limits")
    func names() throws {
        let name = try DNSName("A.b\\.c.example.")
        #expect(name.labelCount == 3)
        #expect(name == (try DNSName("a.B\\.C.EXAMPLE")))
        #expect(name.description == "A.b\\.c.example.")
        #expect((try DNSName("x\\065y")).description == "xAy.")
        #expect(DNSName.root.description == ".")
        #expect(throws: DNSWireError.self) { try DNSName(String(repeating: "a", count: 64) + ".com") }
        #expect(throws: DNSWireError.self) { try DNSName(Array(repeating: String(repeating: "a", count: 63), count: 4).joined(separator: ".")) }
        #expect(throws: DNSWireError.self) { try DNSName("a..b") }
        #expect(try DNSName("www.example.com").isSubdomain(of: try DNSName("Example.com")))
        #expect(!(try DNSName("example.com").isSubdomain(of: try DNSName("www.example.com"))))
    }

    // MARK: hostile input

    /// A valid query for `www.example.com A` with header counts as given.
    static func query(qd: UInt16 = 1, an: UInt16 = 0, ns: UInt16 = 0, ar: UInt16 = 0, flags: UInt16 = 0x0100) -> [UInt8] {
        var bytes: [UInt8] = [0x12, 0x34, UInt8(flags >> 8), UInt8(flags & 0xFF)]
        for count in [qd, an, ns, ar] { bytes += [UInt8(count >> 8), UInt8(count & 0xFF)] }
        bytes += [3] + Array("www".utf8) + [7] + Array("example".utf8) + [3] + Array("com".utf8) + [0, 0, 1, 0, 1]
        return bytes
    }

    static func parse(_ bytes: [UInt8]) -> Result<DNSMessage, DNSWireError> {
        do { return .success(try DNSMessage(parsing: bytes)) } catch let error as DNSWireError { return .failure(error) } catch { return .failure(.messageTooLarge) }
    }

    @Test("truncation anywhere is an error, never a trap")
    func truncated() {
        let bytes = Self.query()
        for length in 0..<bytes.count {
            guard case .failure = Self.parse(Array(bytes.prefix(length))) else {
                Issue.record("a \(length)-byte prefix parsed")
                continue
            }
        }
        // A record cut in its data.
        var withRecord = Self.query(an: 1)
        withRecord += [0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 1, 2]
        guard case .failure(.truncated) = Self.parse(withRecord) else { Issue.record("truncated RR accepted"); return }
    }

    @Test("labels over 63 bytes and names over 255 bytes are rejected")
    func oversized() {
        var long = Array(Self.query().prefix(12))
        long += [64] + [UInt8](repeating: 0x61, count: 64) + [0, 0, 1, 0, 1]
        guard case .failure(.badLabelType) = Self.parse(long) else { Issue.record("label of 64 accepted"); return }
        var huge = Array(Self.query().prefix(12))
        for _ in 0..<5 { huge += [60] + [UInt8](repeating: 0x61, count: 60) }
        huge += [0, 0, 1, 0, 1]
        guard case .failure(.nameTooLong) = Self.parse(huge) else { Issue.record("name over 255 accepted"); return }
    }

    @Test("compression pointer loops, self pointers and forward pointers are rejected")
    func pointers() {
        // Question name is a pointer to itself.
        var selfLoop = Array(Self.query().prefix(12))
        selfLoop += [0xC0, 12, 0, 1, 0, 1]
        guard case .failure(.badPointer) = Self.parse(selfLoop) else { Issue.record("self pointer accepted"); return }
        // Forward pointer: the question points past itself.
        var forward = Array(Self.query().prefix(12))
        forward += [0xC0, 18, 0, 1, 0, 1, 1, 0x61, 0]
        guard case .failure(.badPointer) = Self.parse(forward) else { Issue.record("forward pointer accepted"); return }
        // Two names pointing at each other: an answer at 33 whose pointer leads back to itself.
        var pair = Self.query(an: 1)
        pair += [1, 0x61, 0xC0, 33, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4]
        guard case .failure(.badPointer) = Self.parse(pair) else { Issue.record("pointer loop accepted"); return }
        // A legitimate backward pointer parses.
        var good = Self.query(an: 1)
        good += [0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4]
        guard case .success(let message) = Self.parse(good) else { Issue.record("valid pointer rejected"); return }
        #expect(message.answers.first?.name == message.questions.first?.name)
    }

    @Test("counts larger than the packet, trailing bytes, zero questions")
    func counts() {
        guard case .failure = Self.parse(Self.query(an: 65535, ns: 65535, ar: 65535)) else { Issue.record("inflated counts accepted"); return }
        guard case .failure = Self.parse(Self.query(qd: 65535)) else { Issue.record("inflated question count accepted"); return }
        guard case .failure(.trailingBytes) = Self.parse(Self.query() + [0]) else { Issue.record("trailing byte accepted"); return }
        guard case .success(let empty) = Self.parse(Array(Self.query(qd: 0).prefix(12))) else { Issue.record("empty message rejected"); return }
        #expect(empty.questions.isEmpty)
    }

    @Test("OPT: parsed into EDNS, a second OPT or an OPT outside additional is rejected")
    func opt() {
        let opt: [UInt8] = [0, 0, 41, 0x04, 0xD0, 0, 1, 0x80, 0, 0, 0]
        guard case .success(let one) = Self.parse(Self.query(ar: 1) + opt) else { Issue.record("OPT rejected"); return }
        #expect(one.edns?.udpPayloadSize == 1232)
        #expect(one.edns?.version == 1)
        #expect(one.edns?.dnssecOK == true)
        guard case .failure(.badOPT) = Self.parse(Self.query(ar: 2) + opt + opt) else { Issue.record("two OPTs accepted"); return }
        guard case .failure(.badOPT) = Self.parse(Self.query(an: 1) + opt) else { Issue.record("OPT in answers accepted"); return }
    }

    @Test("random and mutated inputs never trap (bounded)")
    func randomInputs() throws {
        var generator = SystemRandomNumberGenerator()
        let seeds = [Self.query(), Self.query(ar: 1) + [0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 0]]
        for round in 0..<20_000 {
            var bytes = seeds[round % seeds.count]
            for _ in 0..<Int.random(in: 1...6, using: &generator) {
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                case 1: bytes.insert(UInt8.random(in: 0...255, using: &generator), at: Int.random(in: 0...bytes.count, using: &generator))
                default: if bytes.count > 1 { bytes.remove(at: Int.random(in: 0..<bytes.count, using: &generator)) }
                }
            }
            _ = Self.parse(bytes)
            _ = bytes.withUnsafeBytes { DNSQueryView.read($0) }
        }
    }
}
