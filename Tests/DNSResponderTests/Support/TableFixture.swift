import NIOCore
@testable import DNSResponder

/// A small table like the agent builds for `bar` mirrored from `paris`.
enum TableFixture {
    static let service = "bar-paris.default.svc.cluster.local"

    static func content(ttl: UInt32 = 5) throws -> DNSTableContent {
        let name = try DNSName(service)
        let reverse = try DNSName("10.0.112.10.in-addr.arpa")
        let version = try DNSName("dns-version.clusterset.local")
        return DNSTableContent(
            zones: [try DNSZone.standard(origin: try DNSName("cluster.local"), serial: 3, negativeTTL: 30),
                    try DNSZone.standard(origin: try DNSName("clusterset.local"), serial: 3, negativeTTL: 5),
                    try DNSZone.standard(origin: try DNSName("in-addr.arpa"), serial: 3, negativeTTL: 5)],
            ownedNames: [name, reverse, version, try DNSName("empty-paris.default.svc.cluster.local")],
            records: [
                DNSRecord(name: name, ttl: ttl, data: .a([10, 112, 0, 10])),
                DNSRecord(name: name, ttl: ttl, data: .a([10, 112, 0, 11])),
                DNSRecord(name: try DNSName("_http._tcp." + service), ttl: ttl, data: .srv(priority: 0, weight: 100, port: 80, target: name)),
                DNSRecord(name: try DNSName("baz-0." + service), ttl: ttl, data: .a([10, 20, 1, 5])),
                DNSRecord(name: reverse, ttl: ttl, data: .ptr(name)),
                DNSRecord(name: version, ttl: ttl, data: .txt([Array("1.0.0".utf8)])),
                DNSRecord(name: try DNSName("big-paris.default.svc.cluster.local"), ttl: ttl,
                          data: .txt((0..<3).map { _ in [UInt8](repeating: 0x61, count: 250) })),
            ])
    }

    static func table() throws -> DNSRecordTable { try DNSRecordTable(content()) }

    /// Wire bytes of a query.
    static func query(_ name: String, _ type: DNSRecordType, class: DNSClass = .in, edns: DNSEDNS? = nil, id: UInt16 = 0x4242) throws -> [UInt8] {
        var header = DNSHeader(id: id)
        header.recursionDesired = true
        return try DNSMessage(header: header, questions: [DNSQuestion(name: try DNSName(name), type: type, class: `class`)], edns: edns).encoded()
    }

    static let localClient = try? SocketAddress(ipAddress: "127.0.0.1", port: 40000)

    /// Runs the processor; returns the parsed reply, or nil for forward/drop (with the result).
    static func process(_ bytes: [UInt8], table: DNSRecordTable?, source: SocketAddress? = localClient, overTCP: Bool = false,
                        access: DNSAccessList = .standard()) throws -> (reply: DNSMessage?, raw: [UInt8], result: DNSProcessResult) {
        let processor = DNSQueryProcessor(access: access)
        var output = ByteBufferAllocator().buffer(capacity: 512)
        let result = bytes.withUnsafeBytes { processor.process($0, source: source, overTCP: overTCP, table: table, into: &output) }
        if case .reply = result {
            let raw = Array(output.readableBytesView)
            return (try DNSMessage(parsing: raw), raw, result)
        }
        return (nil, [], result)
    }
}
