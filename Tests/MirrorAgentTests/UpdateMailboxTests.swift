import Testing
@testable import MirrorAgent
import MirrorModel
import MirrorFeed

/// The mailbox between a mirror source and the agent: a burst that arrives while the agent
/// is busy is applied once, as the newest store with the union of the changes.
@Suite("UpdateMailbox")
struct UpdateMailboxTests {
    private static func update(revision: UInt64, added cluster: String, rebuilt: Bool = false) throws -> MirrorUpdate {
        var store = MirrorStore()
        _ = try store.applySnapshot(MirrorState(clusters: [Cluster(name: cluster)]), revision: revision)
        var changes = ChangeSet()
        changes.addedClusters = [cluster]
        return MirrorUpdate(store: store, changes: changes, rebuilt: rebuilt)
    }

    /// Records what the agent was handed; the first delivery blocks until released.
    private actor Recorder {
        var seen: [(revision: UInt64, merged: Int, added: Set<String>, rebuilt: Bool)] = []
        private var gate: CheckedContinuation<Void, Never>?
        private var released = false

        func record(_ update: MirrorUpdate, merged: Int) async {
            seen.append((update.store.revision, merged, update.changes.addedClusters, update.rebuilt))
            if seen.count == 1 && !released {
                await withCheckedContinuation { gate = $0 }
            }
        }

        func release() {
            released = true
            gate?.resume()
            gate = nil
        }

        var count: Int { seen.count }
    }

    @Test("a burst posted while the agent is busy is delivered once, merged, newest store last")
    func coalescesBurst() async throws {
        let mailbox = UpdateMailbox()
        let recorder = Recorder()
        let delivery = Task { await mailbox.deliver { await recorder.record($0, merged: $1) } }

        mailbox.post(try Self.update(revision: 1, added: "paris"))
        while await recorder.count < 1 { await Task.yield() }
        // The agent is now busy with revision 1: these three must become one update.
        mailbox.post(try Self.update(revision: 2, added: "berlin"))
        mailbox.post(try Self.update(revision: 3, added: "tokyo", rebuilt: true))
        mailbox.post(try Self.update(revision: 4, added: "lima"))
        await recorder.release()
        mailbox.finish()
        await delivery.value

        let seen = await recorder.seen
        #expect(seen.map(\.revision) == [1, 4])
        #expect(seen.map(\.merged) == [1, 3])
        #expect(seen.last?.added == ["berlin", "tokyo", "lima"])
        // One of them came from a whole document: the merged update did too (the agent then
        // returns the freed heap to the kernel).
        #expect(seen.map(\.rebuilt) == [false, true])
        #expect(NodeAgent.isLarge(try Self.update(revision: 5, added: "oslo", rebuilt: true)))
        #expect(!NodeAgent.isLarge(try Self.update(revision: 5, added: "oslo")))
    }

    @Test("updates posted one at a time, each after the previous was handled, are delivered one by one")
    func deliversInOrderWithoutBurst() async throws {
        let mailbox = UpdateMailbox()
        let recorder = Recorder()
        await recorder.release()
        let delivery = Task { await mailbox.deliver { await recorder.record($0, merged: $1) } }
        for revision in UInt64(1)...5 {
            mailbox.post(try Self.update(revision: revision, added: "c\(revision)"))
            while await recorder.count < Int(revision) { await Task.yield() }
        }
        mailbox.finish()
        await delivery.value
        let seen = await recorder.seen
        #expect(seen.map(\.revision) == [1, 2, 3, 4, 5])
        #expect(seen.allSatisfy { $0.merged == 1 })
    }
}
