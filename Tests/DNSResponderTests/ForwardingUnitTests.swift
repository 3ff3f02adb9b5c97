import NIOCore
import Testing
@testable import DNSResponder

@Suite("forwarded answers: checking, cache keys, replay")
struct ForwardingUnitTests {
    static func view(_ bytes: [UInt8]) throws -> DNSQueryView {
        guard case .query(let view) = bytes.withUnsafeBytes({ DNSQueryView.read($0) }) else { throw TestSetupError("not a query") }
        return view
    }

    @Test("cache keys ignore case but not type, class, DO or CD")
    func keys() throws {
        let lower = try TableFixture.query("www.example.test", .a)
        let upper = try TableFixture.query("WWW.Example.TEST", .a)
        let aaaa = try TableFixture.query("www.example.test", .aaaa)
        let dnssec = try TableFixture.query("www.example.test", .a, edns: DNSEDNS(dnssecOK: true))
        let key = try lower.withUnsafeBytes { DNSCacheKey.bytes($0, query: try Self.view(lower)) }
        let hash = try lower.withUnsafeBytes { DNSCacheKey.hash($0, query: try Self.view(lower)) }
        #expect(try upper.withUnsafeBytes { DNSCacheKey.hash($0, query: try Self.view(upper)) } == hash)
        #expect(try upper.withUnsafeBytes { DNSCacheKey.matches($0, query: try Self.view(upper), key: key) })
        #expect(try !aaaa.withUnsafeBytes { DNSCacheKey.matches($0, query: try Self.view(aaaa), key: key) })
        #expect(try !dnssec.withUnsafeBytes { DNSCacheKey.matches($0, query: try Self.view(dnssec), key: key) })
    }

    /// An upstream answer to `www.example.test A` with OPT, as unbound would send it.
    static func upstreamAnswer(id: UInt16, rcode: DNSResponseCode = .noError, truncated: Bool = false, answers: [DNSRecord]? = nil,
                               authorities: [DNSRecord] = []) throws -> [UInt8] {
        var header = DNSHeader(id: id)
        header.isResponse = true
        header.recursionAvailable = true
        header.isTruncated = truncated
        header.responseCode = rcode
        let name = try DNSName("www.example.test")
        return try DNSMessage(header: header, questions: [DNSQuestion(name: name, type: .a)],
                              answers: answers ?? [DNSRecord(name: name, ttl: 300, data: .a([192, 0, 2, 7]))],
                              authorities: authorities, edns: DNSEDNS()).encoded()
    }

    @Test("upstream answers: ID and question must match, TC asks for TCP, SERVFAIL fails, OPT is stripped, TTLs found")
    func check() throws {
        let question = Array(try TableFixture.query("www.example.test", .a)[12...])
        func outcome(_ bytes: [UInt8], id: UInt16 = 7) -> DNSUpstreamAnswer.Outcome {
            bytes.withUnsafeBytes { DNSUpstreamAnswer.check($0, id: id, question: question, maximumTTL: 3600) }
        }
        guard case .unrelated = outcome(try Self.upstreamAnswer(id: 8)) else { Issue.record("wrong ID accepted"); return }
        guard case .truncated = outcome(try Self.upstreamAnswer(id: 7, truncated: true)) else { Issue.record("TC ignored"); return }
        guard case .failed = outcome(try Self.upstreamAnswer(id: 7, rcode: .serverFailure)) else { Issue.record("SERVFAIL accepted"); return }
        guard case .answer(let answer) = outcome(try Self.upstreamAnswer(id: 7)) else { Issue.record("good answer rejected"); return }
        #expect(answer.cacheTTL == 300)
        #expect(answer.ttlOffsets.count == 1)
        let parsed = try DNSMessage(parsing: answer.bytes)
        #expect(parsed.edns == nil)
        #expect(parsed.answers.count == 1)

        let soa = DNSRecord(name: try DNSName("example.test"), ttl: 3600,
                            data: .soa(DNSSOAData(primaryServer: try DNSName("ns.example.test"), mailbox: try DNSName("a.example.test"), serial: 1, minimum: 3600)))
        guard case .answer(let negative) = outcome(try Self.upstreamAnswer(id: 7, rcode: .nameError, answers: [], authorities: [soa])) else {
            Issue.record("NXDOMAIN rejected"); return
        }
        #expect(negative.cacheTTL == 5)
    }

    @Test("replay: client ID and question case, aged TTLs, OPT only for EDNS clients, TC past the limit")
    func replay() throws {
        let question = Array(try TableFixture.query("www.example.test", .a)[12...])
        guard case .answer(let answer) = try Self.upstreamAnswer(id: 7).withUnsafeBytes({
            DNSUpstreamAnswer.check($0, id: 7, question: question, maximumTTL: 3600)
        }) else { Issue.record("answer rejected"); return }
        let client = try TableFixture.query("WWW.example.TEST", .a, edns: DNSEDNS(udpPayloadSize: 1232), id: 0x9999)
        let view = try Self.view(client)
        var buffer = ByteBuffer()
        client.withUnsafeBytes {
            DNSResponseCache.response(to: view, question: UnsafeRawBufferPointer(rebasing: $0[12..<view.questionEnd]), answer: answer, age: 10,
                                      limit: 1232, into: &buffer)
        }
        let reply = try DNSMessage(parsing: Array(buffer.readableBytesView))
        #expect(reply.header.id == 0x9999)
        #expect(reply.questions.first?.name.description == "WWW.example.TEST.")
        #expect(reply.answers.first?.ttl == 290)
        #expect(reply.edns?.udpPayloadSize == 1232)
        #expect(!reply.header.isAuthoritative && reply.header.recursionAvailable)
        var tight = buffer  // shares storage: the writer must not disturb `buffer`
        client.withUnsafeBytes {
            DNSResponseCache.response(to: view, question: UnsafeRawBufferPointer(rebasing: $0[12..<view.questionEnd]), answer: answer, age: 0,
                                      limit: 40, into: &tight)
        }
        #expect(try DNSMessage(parsing: Array(buffer.readableBytesView)).answers.count == 1)
        let truncated = try DNSMessage(parsing: Array(tight.readableBytesView))
        #expect(truncated.header.isTruncated && truncated.answers.isEmpty)
    }
}
