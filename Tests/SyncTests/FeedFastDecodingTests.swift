import Foundation
import NIOCore
import Testing
@testable import MirrorModel
@testable import MirrorFeed

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
        #expect(fast == expected, "the fast path declined or differed on a shape inside its subset")
        #expect(try FeedEvent.decode(line: ByteBuffer(string: text)) == expected)
    }

    /// Outside the subset: the fast path declines and the decoder decides (decodes or names
    /// the error).
    @Test(arguments: [
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

    /// Escapes are inside the shared reader's subset (it also reads state files): decoded
    /// exactly as the decoder decodes them.
    @Test(arguments: [
        #"{"type":"deleteCluster","revision":5,"name":"ber\u006cin"}"#,
        #"{"type":"deleteCluster","revision":5,"name":"\"q\"\\\/\b\f\n\r\t \ud83d\ude00 caf\u00e9"}"#,
    ])
    func escapesDecodeTheSame(text: String) throws {
        let (fast, reference) = both(text)
        #expect(fast != nil)
        #expect(fast == (try reference.get()))
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

    /// Strings that need escapes, non-ASCII text and every optional field: the writer's JSON
    /// decodes (with JSONDecoder, the reference) to the same value.
    @Test func theWriterEscapesWhatJSONRequires() throws {
        let names = ["quote\"d", "back\\slash", "line\nbreak", "tab\tand\r", "bell\u{07}", "Zürich ✓ 🛰", "/slash/", ""]
        let clusters = names.map { Cluster(name: $0, gateway: Gateway(addresses: [$0, "10.0.0.1"], port: 1, identity: $0, alive: false), masquerade: true) }
            + [Cluster(name: "flat")]
        let services = names.enumerated().map { index, name in
            MirroredService(name: name, namespace: name, cluster: index % 2 == 0 ? name : nil, mode: .federated, ips: [name],
                            ports: [ServicePort(name: name, protocol: .sctp, port: -index, targetPort: Int.max, gatewayPort: Int.min),
                                    ServicePort(port: 80)],
                            endpoints: [Endpoint(ip: name, ready: false, hostname: name, cluster: name), Endpoint(ip: "10.0.0.2")])
        }
        let state = MirrorState(clusterDomain: "dom\"ain", clusters: clusters, services: services)
        for event in [FeedEvent.snapshot(epoch: "ep\\och", revision: 1, state: state), .delta(revision: 2, .upsertService(services[0])),
                      .delta(revision: 3, .deleteService(ServiceKey(namespace: "a\"", mirroredName: "b\n")))] {
            var line = try event.encodedLine()
            #expect(line.readableBytesView.filter { $0 == UInt8(ascii: "\n") }.count == 1)  // one line, whatever the strings
            line.moveWriterIndex(to: line.writerIndex - 1)
            #expect(try FeedEvent.decodeWithFoundation(line: line) == event)
            #expect(try FeedEvent.decode(line: line) == event)
        }
        // Without escapes the fast path reads non-ASCII text as is.
        var plain = try FeedEvent.delta(revision: 4, .deleteCluster(name: "Zürich ✓ 🛰")).encodedLine()
        plain.moveWriterIndex(to: plain.writerIndex - 1)
        #expect(plain.withUnsafeReadableBytes { try? FeedEvent.decodeFast($0) } == .delta(revision: 4, .deleteCluster(name: "Zürich ✓ 🛰")))
    }

    /// The agent's persisted state: written by the writer, read back by the fast path, and
    /// still readable by JSONDecoder (the format older agents read).
    @Test func theStateFileRoundTrips() throws {
        struct Document: Decodable {
            var format: Int
            var epoch: String?
            var revision: UInt64
            var state: MirrorState
        }
        var state = FeedFixtures.state(services: 3, extraClusters: ["berlin"])
        state.clusters[0].gateway?.identity = "gw.paris"
        state.services.append(FeedFixtures.flatService(0, endpoints: 3))
        state.services[3].endpoints[1] = Endpoint(ip: "10.20.9.9", ready: false, hostname: nil, cluster: "paris")
        state.services[3].ports[0].gatewayPort = 4000
        var store = MirrorStore()
        try store.applySnapshot(state, revision: 42)
        let directory = try FeedFixtures.temporaryDirectory()
        let file = FeedStateFile(directory: directory)
        try file.save(store, epoch: "e-1")
        let loaded = try #require(try file.load())
        #expect(loaded.store.state == store.state && loaded.store.revision == 42 && loaded.epoch == "e-1")
        let document = try JSONDecoder().decode(Document.self, from: Data(contentsOf: URL(fileURLWithPath: file.path)))
        // Services are written in the store's own order (readers do not need any).
        #expect(document.format == 1 && document.epoch == "e-1" && document.revision == 42 && document.state.normalized == store.state)
    }
}
