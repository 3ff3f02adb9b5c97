import Foundation
import NIOCore
import Testing
@testable import MirrorModel
@testable import MirrorFeed

/// Traffic policies through every codec: YAML → JSON and back, `Codable`, the fast decoder,
/// the feed's events (`FeedJSONWriter` out, fast path and `JSONDecoder` in), and the agent's
/// persisted state.
@Suite struct TrafficPolicyCodecTests {
    @Test func yamlToJSONAndBackIsLossless() throws {
        let fromYAML = try MirrorState(parsing: policyStateYAML)
        let json = try fromYAML.canonicalJSON()
        #expect(try JSONDecoder().decode(MirrorState.self, from: json) == fromYAML)
        #expect(try MirrorState(parsing: String(decoding: json, as: UTF8.self)) == fromYAML)
        #expect(Array(json).withUnsafeBufferPointer { StateJSONDecoder.decode($0) } == fromYAML)
        // A JSON state file, read from disk (the fast path straight from the file's bytes).
        let path = try FeedFixtures.temporaryDirectory() + "/state.json"
        try json.write(to: URL(fileURLWithPath: path))
        #expect(try MirrorState(contentsOf: path) == fromYAML)
    }

    @Test func theJSONFormIsSortedAndExplicit() throws {
        let state = try MirrorState(parsing: policyStateYAML)
        let text = String(decoding: try state.canonicalJSON(), as: UTF8.self)
        #expect(text.contains(#","policies":[{"backends":[{"local":true,"weight":900},{"mirror":"bar-paris","weight":100}],"failover":["bar-paris","web-federated"],"ips":["10.96.5.5","fd00:96::5"],"localReady":false,"name":"bar","namespace":"default","ports":[{"name":"http","port":80,"protocol":"TCP"}]},"#),
                "\(text)")
        #expect(text.contains(#"{"backends":[{"mirror":"db-paris","weight":1}],"failover":[],"ips":["10.96.5.6"],"localReady":true,"name":"db","namespace":"default","ports":[{"port":5432,"protocol":"TCP"}]}],"services":["#))
        // The feed's writer spells a state exactly as `Codable` does.
        var writer = FeedJSONWriter()
        writer.write(state)
        #expect(String(buffer: writer.buffer) == text)
    }

    @Test func aStateWithoutPoliciesIsTheSameBytesAsBefore() throws {
        let state = try MirrorState(parsing: validYAML)
        let text = String(decoding: try state.canonicalJSON(), as: UTF8.self)
        #expect(!text.contains("policies"))
        var writer = FeedJSONWriter()
        writer.write(state)
        #expect(String(buffer: writer.buffer) == text)
        var store = MirrorStore()
        try store.applySnapshot(state, revision: 1)
        var unsorted = FeedJSONWriter()
        unsorted.write(unsorted: store)
        #expect(!String(buffer: unsorted.buffer).contains("policies"))
    }

    /// JSON in other shapes: omitted defaults and nulls decode the same through `Codable` and
    /// the fast decoder.
    @Test(arguments: [
        #"{"name":"a","namespace":"n","ips":["10.0.0.1"],"ports":[{"port":80}],"backends":[{"local":true,"weight":1}]}"#,
        #"{"name":"a","namespace":"n","ips":["10.0.0.1"],"ports":[{"port":80,"protocol":null,"name":null}],"backends":[{"local":true,"mirror":null,"weight":1}],"failover":null,"localReady":null}"#,
        #"{"name":"a","namespace":"n","ips":[],"ports":[],"backends":[{"local":null,"mirror":"m","weight":5},{"local":false,"mirror":"o","weight":0}],"failover":["m"],"localReady":false}"#,
        #" { "localReady" : true , "backends" : [ { "weight" : 1 , "local" : true } ] , "ports" : [ { "protocol" : "SCTP" , "port" : 9 } ] , "ips" : [ "fd00::1" ] , "namespace" : "n" , "name" : "a" } "#,
    ])
    func otherShapesDecodeTheSame(text: String) throws {
        let reference = try JSONDecoder().decode(TrafficPolicy.self, from: Data(text.utf8))
        let fast = Array(text.utf8).withUnsafeBufferPointer { bytes -> TrafficPolicy? in
            var decoder = StateJSONDecoder(bytes, interning: false)
            guard let policy = try? decoder.policy(), (try? decoder.cursor.finish()) != nil else { return nil }
            return policy
        }
        #expect(fast == reference)
    }

    /// Documents that are not policies: refused by both (the fast decoder declines, `Codable`
    /// throws, so the explaining reader runs).
    @Test(arguments: [
        #"{"name":"a","namespace":"n","ips":["10.0.0.1"],"ports":[{"port":80}],"backends":[{"weight":1}]}"#,
        #"{"name":"a","namespace":"n","ips":["10.0.0.1"],"ports":[{"port":80}],"backends":[{"local":true,"mirror":"m","weight":1}]}"#,
        #"{"name":"a","namespace":"n","ips":["10.0.0.1"],"ports":[{"port":80}],"backends":[{"local":false,"weight":1}]}"#,
        #"{"name":"a","namespace":"n","ips":["10.0.0.1"],"ports":[{"port":80}],"backends":[{"local":true}]}"#,
        #"{"name":"a","namespace":"n","ips":["10.0.0.1"],"ports":[{"port":80}],"backends":null}"#,
        #"{"name":"a","namespace":"n","ips":["10.0.0.1"],"ports":[{"port":80}]}"#,
        #"{"name":"a","namespace":"n","ips":["10.0.0.1"],"backends":[{"local":true,"weight":1}]}"#,
        #"{"name":"a","ips":["10.0.0.1"],"ports":[{"port":80}],"backends":[{"local":true,"weight":1}]}"#,
        #"{"name":"a","namespace":"n","ips":["10.0.0.1"],"ports":[{"port":80,"targetPort":80}],"backends":[{"local":true,"weight":1}]}"#,
    ])
    func malformedPoliciesAreRefusedByBoth(text: String) {
        let fast = Array(text.utf8).withUnsafeBufferPointer { bytes -> TrafficPolicy? in
            var decoder = StateJSONDecoder(bytes, interning: false)
            return try? decoder.policy()
        }
        #expect(fast == nil)
        let strict = JSONDecoder()
        strict.userInfo[.strictMirrorState] = true
        #expect(throws: (any Error).self) { try strict.decode(TrafficPolicy.self, from: Data(text.utf8)) }
    }

    static let events: [FeedEvent] = [
        .delta(revision: 4, .upsertPolicy(PolicyFixtures.policy())),
        .delta(revision: 5, .upsertPolicy(TrafficPolicy(name: "x", namespace: "shop", ips: ["10.96.0.9", "fd00:96::9"],
            ports: [PolicyPort(protocol: .udp, port: 53), PolicyPort(name: "s", protocol: .sctp, port: 9)],
            backends: [PolicyBackend(mirror: "x-paris", weight: 0), PolicyBackend(mirror: "x-berlin", weight: 1000)], localReady: false))),
        .delta(revision: 6, .deletePolicy(PolicyKey(namespace: "default", name: "svc-0"))),
        .snapshot(epoch: "e", revision: 7, state: PolicyFixtures.state()),
    ]

    @Test(arguments: events)
    func policyEventsRoundTripOnEveryPath(event: FeedEvent) throws {
        var line = try event.encodedLine()
        #expect(line.readableBytesView.last == UInt8(ascii: "\n"))
        line.moveWriterIndex(to: line.writerIndex - 1)
        #expect(try line.withUnsafeReadableBytes { try FeedEvent.decodeFast($0) } == event, "the fast path reads the server's lines")
        #expect(try FeedEvent.decodeWithFoundation(line: line) == event)
        #expect(try FeedEvent.decode(line: line) == event)
        // The writer's line is the `Codable` form (type and revision first, then sorted).
        let viaCodable = try JSONDecoder().decode(FeedEvent.self, from: try JSONEncoder().encode(event))
        #expect(viaCodable == event)
    }

    @Test func policyEventsOnTheWire() throws {
        let upsert = try FeedEvent.delta(revision: 4, .upsertPolicy(PolicyFixtures.policy())).encodedLine()
        #expect(String(buffer: upsert) == #"{"type":"upsertPolicy","revision":4,"policy":{"backends":[{"local":true,"weight":800},{"mirror":"svc-0-paris","weight":200}],"failover":["svc-0-paris","svc-0-berlin"],"ips":["10.96.0.1"],"localReady":true,"name":"svc-0","namespace":"default","ports":[{"name":"http","port":80,"protocol":"TCP"}]}}"# + "\n")
        let delete = try FeedEvent.delta(revision: 5, .deletePolicy(PolicyKey(namespace: "default", name: "svc-0"))).encodedLine()
        #expect(String(buffer: delete) == #"{"type":"deletePolicy","revision":5,"namespace":"default","name":"svc-0"}"# + "\n")
        #expect(FeedEvent.delta(revision: 4, .upsertPolicy(PolicyFixtures.policy())).typeName == "upsertPolicy")
        #expect(MirrorDelta.deletePolicy(PolicyKey(namespace: "default", name: "svc-0")).summary == "delete policy default/svc-0")
    }

    /// Lines the fast path leaves to `JSONDecoder`, which decodes them (a client ignores
    /// fields it does not know) or names the problem.
    @Test func otherPolicyLinesGoToTheDecoder() throws {
        let future = #"{"type":"deletePolicy","revision":5,"namespace":"default","name":"svc-0","reason":"gone"}"#
        #expect(ByteBuffer(string: future).withUnsafeReadableBytes { try? FeedEvent.decodeFast($0) } == nil)
        #expect(try FeedEvent.decode(line: ByteBuffer(string: future)) == .delta(revision: 5, .deletePolicy(PolicyKey(namespace: "default", name: "svc-0"))))
        for bad in [
            #"{"type":"deletePolicy","revision":5,"namespace":"default"}"#,
            #"{"type":"upsertPolicy","revision":5}"#,
            #"{"type":"upsertPolicy","revision":5,"policy":{"name":"a","namespace":"n","ips":[],"ports":[],"backends":[{"weight":1}]}}"#,
        ] {
            #expect(throws: FeedProtocolError.self) { try FeedEvent.decode(line: ByteBuffer(string: bad)) }
        }
    }

    /// The agent's persisted state keeps its policies: written by the writer, read back by
    /// the fast path, and readable by `JSONDecoder`.
    @Test func thePersistedStateKeepsPolicies() throws {
        struct Document: Decodable {
            var format: Int
            var epoch: String?
            var revision: UInt64
            var state: MirrorState
        }
        let state = PolicyFixtures.state()
        var store = MirrorStore()
        try store.applySnapshot(state, revision: 42)
        let file = FeedStateFile(directory: try FeedFixtures.temporaryDirectory())
        try file.save(store, epoch: "e-1")
        let loaded = try #require(try file.load())
        #expect(loaded.store.state == state.normalized && loaded.store.revision == 42 && loaded.epoch == "e-1")
        #expect(loaded.store.policies == store.policies)
        #expect(loaded.changes.addedPolicies == [PolicyKey(namespace: "default", name: "svc-0")], "a fresh start programs every policy")
        let document = try JSONDecoder().decode(Document.self, from: Data(contentsOf: URL(fileURLWithPath: file.path)))
        #expect(document.state.normalized == state.normalized)
    }
}
