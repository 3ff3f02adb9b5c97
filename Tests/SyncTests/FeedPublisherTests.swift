import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import MirrorModel
@testable import MirrorFeed

/// The publisher over a scripted source: a run of changes goes out as deltas (checked against
/// the store as last published, kept across changes), a change deltas cannot express as a
/// snapshot, and deltas resume after it; a client applying the stream ends with the source's
/// state after every change.
@Suite struct FeedPublisherTests {
    /// Hands the prepared states to the publisher one by one, as a file source would.
    struct ScriptedSource: MirrorSource {
        let states: [MirrorState]
        let hub: FeedHub
        /// The hub's state after each update, as the source saw it returned.
        let seen = NIOLockedValueBox<[MirrorState?]>([])
        var description: String { "scripted" }

        func run(onUpdate: @escaping @Sendable (MirrorUpdate) async -> Void) async throws {
            var store = MirrorStore()
            for state in states {
                let changes = try store.applySnapshot(state, revision: store.revision + 1)
                await onUpdate(MirrorUpdate(store: store, changes: changes))
                let current = hub.currentState
                seen.withLockedValue { $0.append(current) }
            }
        }
    }

    @Test func changesGoOutAsDeltasAndSnapshotsWhereNeeded() async throws {
        var states: [MirrorState] = []
        var state = FeedFixtures.state(services: 3)
        state.services.append(FeedFixtures.flatService(0, endpoints: 4))
        states.append(state)
        for step in 0..<4 {  // one endpoint flipped per change
            state.services[3].endpoints[step].ready.toggle()
            states.append(state)
        }
        var added = state
        added.clusters.append(Cluster(name: "berlin", gateway: Gateway(addresses: ["10.99.9.2"])))
        added.services.append(FeedFixtures.service(7, cluster: "berlin"))
        states.append(added)  // a cluster and its service: two deltas, cluster first
        var renamed = added
        renamed.clusterDomain = "example.org"
        states.append(renamed)  // no delta can say this: a snapshot
        var after = renamed
        after.services.removeFirst()
        states.append(after)  // deltas again, from the snapshot's state

        let hub = FeedHub()
        let source = ScriptedSource(states: states, hub: hub)
        try await FeedPublisher(hub: hub, source: source, logger: FeedFixtures.logger).run()

        #expect(source.seen.withLockedValue { $0 } == states.map { Optional($0.normalized) })
        // 1 (first snapshot) + 4 + 2 + 1 (snapshot) + 1.
        #expect(hub.revision == 9)
        let metrics = hub.metrics.render()
        #expect(metrics.contains("mirror_feed_deltas_published_total 7\n"))
        #expect(metrics.contains("mirror_feed_snapshots_published_total 1\n"))

        // A new watcher's snapshot, built from the store the last deltas led to, is the
        // source's last state.
        var applier = FeedApplier()
        applier.beginStream()
        guard case .lines(let lines, _, _) = hub.start(on: MultiThreadedEventLoopGroup.singleton.next(), since: nil, epoch: nil) else {
            Issue.record("the hub refused a watch")
            return
        }
        for (_, chunk, _) in lines {
            var chunk = chunk
            // Strip the HTTP chunk framing: "<hex>\r\n<line>\n\r\n".
            let view = chunk.readableBytesView
            guard let headerEnd = view.firstIndex(of: UInt8(ascii: "\n")) else { continue }
            chunk.moveReaderIndex(to: headerEnd + 1)
            chunk.moveWriterIndex(to: chunk.writerIndex - 3)
            _ = try applier.apply(FeedEvent.decode(line: chunk))
        }
        #expect(applier.store.state == after.normalized)
    }
}
