/// libFuzzer entry point for the DNS parsers. Built by fuzz/run.sh together with the wire,
/// table and query-view sources of DNSResponder (which do not need NIO).
///
/// Properties checked on every input:
/// - no parser traps, hangs or allocates without bound (libFuzzer + ASan watch for this);
/// - whatever `DNSMessage` parses, it encodes again, and the encoding parses to the same
///   questions and records (compression round-trips);
/// - the in-place query reader agrees with the full parser about the question;
/// - the record table lookup and the upstream-answer checker accept any bytes.

private let table: DNSRecordTable? = {
    guard let name = try? DNSName("bar-paris.default.svc.cluster.local"),
          let zone = try? DNSZone.standard(origin: DNSName("cluster.local"), serial: 1, negativeTTL: 5) else { return nil }
    return try? DNSRecordTable(DNSTableContent(zones: [zone], ownedNames: [name], records: [DNSRecord(name: name, ttl: 5, data: .a([10, 0, 0, 1]))]))
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    let parsed = try? DNSMessage(parsing: bytes)
    if let parsed, let encoded = try? parsed.encoded() {
        guard let again = try? DNSMessage(parsing: encoded) else { fatalError("re-encoded message does not parse") }
        guard again.questions == parsed.questions, again.answers == parsed.answers,
              again.authorities == parsed.authorities, again.additionals == parsed.additionals else {
            fatalError("round trip changed the message")
        }
    }
    if case .query(let view) = DNSQueryView.read(bytes) {
        if let question = parsed?.questions.first {
            guard question.name.wire.count == view.nameLength, question.type.rawValue == view.type else {
                fatalError("query view and parser disagree")
            }
        }
        _ = table?.match(bytes, start: DNSLimits.headerSize, length: view.nameLength, labelCount: view.labelCount)
    }
    if size >= 12 {
        let question = Array(bytes[12..<min(size, 40)])
        _ = DNSUpstreamAnswer.check(bytes, id: UInt16(bytes[0]) << 8 | UInt16(bytes[1]), question: question, maximumTTL: 3600)
    }
    return 0
}
