import NIOCore
import Testing
@testable import Sync

/// The in-place event reader against `JSONDecoder`: what it accepts it must decode exactly
/// as the decoder does, and everything outside its subset must reach the decoder.
@Suite struct FeedFastDecodingTests {
    /// Decodes `text` both ways: the fast result (nil when it declined) and the decoder's.
    private func both(_ text: String) -> (fast: FeedEvent?, reference: Result<FeedEvent, any Error>) {
        let line = ByteBuffer(string: text)
        let fast = line.withUnsafeReadableBytes { try? FeedEvent.decodeFast($0) }
        return (fast, Result { try FeedEvent.decodeWithFoundation(line: line) })
    }

    @Test(arguments: [
        FeedEvent.snapshot(epoch: "e", revision: 3, state: FeedFixtures.state(services: 3, extraClusters: ["berlin"])),
        .resumed(epoch: "7f3c", revision: 3),
        .bookmark(revision: 18_446_744_073_709_551_615),
        .delta(revision: 4, .upsertCluster(Cluster(name: "berlin", gateway: Gateway(addresses: ["10.0.0.1", "fd00::1"], port: 4000, identity: "gw.berlin", alive: false), masquerade: true))),
        .delta(revision: 4, .upsertCluster(Cluster(name: "flat"))),
        .delta(revision: 5, .deleteCluster(name: "berlin")),
        .delta(revision: 6, .upsertService(FeedFixtures.flatService(1, endpoints: 16))),
        .delta(revision: 6, .upsertService(MirroredService(name: "web", namespace: "shop", mode: .federated, ips: ["10.1.0.1"],
            ports: [ServicePort(name: nil, protocol: .udp, port: 53, targetPort: 5353, gatewayPort: 4053)],
            endpoints: [Endpoint(ip: "10.2.0.1", ready: false, hostname: nil, cluster: "paris")]))),
        .delta(revision: 7, .deleteService(ServiceKey(namespace: "default", mirroredName: "bar-paris"))),
    ])
    func serverLinesTakeTheFastPathAndDecodeTheSame(event: FeedEvent) throws {
        var line = try event.encodedLine()
        line.moveWriterIndex(to: line.writerIndex - 1)
        let fast = try line.withUnsafeReadableBytes { try FeedEvent.decodeFast($0) }
        #expect(fast == event)
        #expect(try FeedEvent.decodeWithFoundation(line: line) == event)
    }

    /// Valid JSON in other shapes than the server writes: omitted defaults, nulls, spacing,
    /// field order. Both paths agree (the fast one may decline, never differ).
    @Test(arguments: [
        #"{"revision":3,"type":"upsertService","service":{"name":"a","namespace":"b","cluster":"c","mode":"gateway","ips":["10.0.0.1"]}}"#,
        #"{"type":"upsertService","revision":3,"service":{"name":"a","namespace":"b","cluster":null,"mode":"federated","ips":[],"ports":null,"endpoints":[{"ip":"10.0.0.2","ready":null,"hostname":null}]}}"#,
        #"{"type":"upsertService","revision":3,"service":{"name":"a","namespace":"b","mode":"remote-discovery","ips":["10.0.0.1"],"ports":[{"port":80},{"port":81,"protocol":null,"targetPort":null,"name":null}]}}"#,
        #" { "type" : "upsertCluster" , "revision" : 0 , "cluster" : { "name" : "x" , "gateway" : { "addresses" : [ "1.2.3.4" ] , "port" : null } } } "#,
        #"{"type":"snapshot","revision":1,"epoch":"e","state":{}}"#,
        #"{"type":"snapshot","revision":1,"epoch":"e","state":{"clusterDomain":null,"clusters":null,"services":[]}}"#,
        #"{"type":"upsertService","revision":3,"service":{"name":"a","namespace":"b","mode":"gateway","ips":["10.0.0.1"],"ports":[{"port":-0}]}}"#,
        #"{"type":"bookmark","revision":9,"cluster":{"name":"ignored"}}"#,
    ])
    func otherValidShapesDecodeTheSame(text: String) throws {
        let (fast, reference) = both(text)
        let expected = try reference.get()
        #expect(fast == nil || fast == expected)
        #expect(try FeedEvent.decode(line: ByteBuffer(string: text)) == expected)
    }

    /// Outside the subset: the fast path declines and the decoder decides (decodes or names
    /// the error).
    @Test(arguments: [
        #"{"type":"deleteCluster","revision":5,"name":"ber\u006cin"}"#,  // escape
        #"{"type":"deleteCluster","revision":5,"name":"a","name":"b"}"#,  // repeated field
        #"{"type":"deleteCluster","revision":5,"name":"a","future":1}"#,  // unknown field
        #"{"type":"upsertService","revision":3,"service":{"name":"a","namespace":"b","mode":"gateway","ips":["10.0.0.1"],"ports":[{"port":80.0}]}}"#,
        #"{"type":"upsertService","revision":3,"service":{"name":"a","namespace":"b","mode":"gateway","ips":["10.0.0.1"],"ports":[{"port":1e2}]}}"#,
        #"{"type":"bookmark","revision":07}"#,
        #"{"type":"bookmark","revision":-1}"#,
        #"{"type":"bookmark","revision":18446744073709551616}"#,
        #"{"type":"bookmark","revision":1} x"#,
        #"{"type":"bookmark","revision":1"#,
        #"{"type":"bookmark","revision":1,}"#,
        #"{"type":"snapshot","revision":1,"epoch":"e","state":null}"#,
        #"{"type":"upsertService","revision":3,"service":{"name":"a","namespace":"b","mode":"teleport","ips":["10.0.0.1"]}}"#,
        #"{"type":"upsertService","revision":3,"service":{"name":"a","namespace":"b","mode":"gateway","ips":[null]}}"#,
        #"{"type":"upsertCluster","revision":3,"cluster":{"name":"a","masquerade":truex}}"#,
        #"{"type":"upsertCluster","revision":3,"cluster":{"name":"a","masquerade":1}}"#,
        #"{"type":"bookmark"}"#,
        #"{"type":"teleport","revision":1}"#,
        "not json",
        "",
    ])
    func linesOutsideTheSubsetGoToTheDecoder(text: String) {
        let (fast, reference) = both(text)
        #expect(fast == nil)
        switch reference {
        case .success(let expected): #expect((try? FeedEvent.decode(line: ByteBuffer(string: text))) == expected)
        case .failure: #expect(throws: FeedProtocolError.self) { try FeedEvent.decode(line: ByteBuffer(string: text)) }
        }
    }

    /// Invalid UTF-8 inside a string is refused by both.
    @Test func invalidUTF8IsNotAccepted() {
        var line = ByteBuffer(string: #"{"type":"deleteCluster","revision":5,"name":"a"#)
        line.writeBytes([0xC3, 0x28])
        line.writeString(#""}"#)
        #expect(line.withUnsafeReadableBytes { try? FeedEvent.decodeFast($0) } == nil)
        #expect(throws: FeedProtocolError.self) { try FeedEvent.decode(line: line) }
    }

    /// Every single-byte corruption of real lines: whatever the fast path accepts, the decoder
    /// accepts with the same value (a deterministic sweep, bounded by the lines' length).
    @Test func corruptedLinesNeverDecodeDifferently() throws {
        let events: [FeedEvent] = [
            .delta(revision: 6, .upsertService(FeedFixtures.flatService(1, endpoints: 2))),
            .delta(revision: 4, .upsertCluster(Cluster(name: "b", gateway: Gateway(addresses: ["10.0.0.1"], identity: "g"), masquerade: true))),
            .delta(revision: 7, .deleteService(ServiceKey(namespace: "default", mirroredName: "bar-paris"))),
        ]
        let replacements: [UInt8] = Array(#"0 9-.e"{}[],:\nlu"#.utf8) + [0x00, 0xFF]
        var accepted = 0
        for event in events {
            var line = try event.encodedLine()
            line.moveWriterIndex(to: line.writerIndex - 1)
            let original = Array(line.readableBytesView)
            for position in original.indices {
                for replacement in replacements where replacement != original[position] {
                    var bytes = original
                    bytes[position] = replacement
                    let corrupted = ByteBuffer(bytes: bytes)
                    guard let fast = corrupted.withUnsafeReadableBytes({ try? FeedEvent.decodeFast($0) }) else { continue }
                    accepted += 1
                    #expect(fast == (try? FeedEvent.decodeWithFoundation(line: corrupted)), "\(String(decoding: bytes, as: UTF8.self))")
                }
            }
        }
        #expect(accepted > 0)  // e.g. a changed digit or letter inside a value
    }
}
