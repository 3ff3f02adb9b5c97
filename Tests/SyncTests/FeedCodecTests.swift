import NIOCore
import Testing
@testable import MirrorModel
@testable import MirrorFeed

/// The pieces under the stream, without sockets: event codec, line splitting, history, delta
/// ordering, and the client's acceptance rules.
@Suite struct FeedCodecTests {
    @Test(arguments: [
        FeedEvent.snapshot(epoch: "e", revision: 3, state: FeedFixtures.state(services: 2)),
        .resumed(epoch: "e", revision: 3),
        .bookmark(revision: 9),
        .delta(revision: 4, .upsertCluster(Cluster(name: "berlin", gateway: Gateway(addresses: ["10.0.0.1"]), masquerade: true))),
        .delta(revision: 5, .deleteCluster(name: "berlin")),
        .delta(revision: 6, .upsertService(FeedFixtures.flatService(1, endpoints: 2))),
        .delta(revision: 7, .deleteService(ServiceKey(namespace: "default", mirroredName: "bar-paris"))),
    ])
    func eventsRoundTripAsOneLine(event: FeedEvent) throws {
        var line = try event.encodedLine()
        let text = String(buffer: line)
        #expect(text.hasPrefix("{\"type\":\"\(event.typeName)\",\"revision\":\(event.revision)"))
        #expect(text.hasSuffix("}\n"))
        #expect(text.filter { $0 == "\n" }.count == 1)
        line.moveWriterIndex(to: line.writerIndex - 1)
        #expect(try FeedEvent.decode(line: line) == event)
    }

    @Test func malformedLinesAreNamed() {
        #expect(throws: FeedProtocolError.self) { try FeedEvent.decode(line: ByteBuffer(string: "{\"type\":\"teleport\",\"revision\":1}")) }
        #expect(throws: FeedProtocolError.self) { try FeedEvent.decode(line: ByteBuffer(string: "{\"type\":\"bookmark\"}")) }
        #expect(throws: FeedProtocolError.self) { try FeedEvent.decode(line: ByteBuffer(string: "not json")) }
    }

    @Test func theSplitterReassemblesLinesAndBoundsThem() throws {
        var splitter = FeedLineSplitter(limit: 16)
        splitter.append(ByteBuffer(string: "abc\n\nde"))
        #expect(try splitter.nextLine().map { String(buffer: $0) } == "abc")
        #expect(try splitter.nextLine() == nil)
        splitter.append(ByteBuffer(string: "f\ng"))
        #expect(try splitter.nextLine().map { String(buffer: $0) } == "def")
        #expect(try splitter.nextLine() == nil)
        splitter.append(ByteBuffer(string: String(repeating: "x", count: 20)))
        #expect(throws: FeedProtocolError.lineTooLong(limit: 16)) { try splitter.nextLine() }
    }

    @Test func historyIsBoundedAndAnswersOnlyWhatItHolds() {
        var history = FeedHistory(maxCount: 3, maxBytes: 1 << 20)
        history.reset(at: 10)
        for revision in UInt64(11)...15 { history.append(revision: revision, line: ByteBuffer(string: "\(revision)"), type: "x") }
        #expect(history.count == 3)
        #expect(history.floor == 12)
        #expect(history.lines(after: 11) == nil)
        #expect(history.lines(after: 12)?.map(\.revision) == [13, 14, 15])
        #expect(history.lines(after: 15)?.isEmpty == true)
        #expect(history.lines(after: 16) == nil)
        var small = FeedHistory(maxCount: 100, maxBytes: 10)
        small.reset(at: 0)
        for revision in UInt64(1)...5 { small.append(revision: revision, line: ByteBuffer(string: "1234"), type: "x") }
        #expect(small.bytes <= 10)
        #expect(small.lines(after: small.floor)?.count == small.count)
    }

    @Test func deltasAreOrderedSoEachOneValidates() throws {
        var old = MirrorStore()
        try old.applySnapshot(FeedFixtures.state(services: 2), revision: 1)
        var target = FeedFixtures.state(services: 1, extraClusters: ["berlin"])
        target.services.append(FeedFixtures.service(7, cluster: "berlin"))
        // The source hands on the new store and what changed since the old one.
        var new = old
        let changes = try new.applySnapshot(target, revision: 2)
        let deltas = try #require(FeedPublisher.deltas(from: old, to: new, changes: changes))
        #expect(deltas.map(\.summary) == ["delete service default/svc-1-paris", "upsert cluster berlin", "upsert service default/svc-7-berlin"])

        // Removing berlin and its service: the service goes first.
        var back = new
        let removal = try back.applySnapshot(FeedFixtures.state(services: 1), revision: 3)
        #expect(FeedPublisher.deltas(from: new, to: back, changes: removal)?.map(\.summary) == ["delete service default/svc-7-berlin", "delete cluster berlin"])
    }

    @Test func theApplierAcceptsOnlyAnOrderedStream() throws {
        let state = FeedFixtures.state(services: 1)
        var applier = FeedApplier()
        applier.beginStream()
        #expect(throws: FeedProtocolError.self) { try applier.apply(.bookmark(revision: 0)) }
        #expect(throws: FeedProtocolError.self) { try applier.apply(.resumed(epoch: "e", revision: 0)) }
        _ = try applier.apply(.snapshot(epoch: "e", revision: 4, state: state))
        #expect(throws: FeedProtocolError.self) { try applier.apply(.delta(revision: 6, .deleteService(state.services[0].key))) }
        #expect(throws: FeedProtocolError.self) { try applier.apply(.delta(revision: 4, .deleteService(state.services[0].key))) }
        #expect(throws: FeedProtocolError.self) { try applier.apply(.bookmark(revision: 5)) }
        #expect(throws: (any Error).self) { try applier.apply(.delta(revision: 5, .deleteCluster(name: "paris"))) }
        #expect(applier.store.revision == 4 && applier.store.state == state)
        _ = try applier.apply(.delta(revision: 5, .deleteService(state.services[0].key)))
        #expect(applier.since == 5)
        applier.beginStream()
        #expect(throws: FeedProtocolError.self) { try applier.apply(.resumed(epoch: "other", revision: 5)) }
        #expect(try applier.apply(.resumed(epoch: "e", revision: 5)) == nil)
    }
}
