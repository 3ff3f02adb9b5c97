import NIOConcurrencyHelpers
import MirrorModel
import MirrorFeed

/// Hands mirror updates from a source to the agent, coalescing a burst.
///
/// The source never waits for the kernel or the DNS table: `post` returns at once. While the
/// agent is still applying one update, later ones are merged into a single pending update
/// (the newest store, the union of their change sets), so a burst of N feed events costs one
/// nftables batch and one DNS table patch instead of N, and the agent never falls behind the
/// feed by more than one update.
final class UpdateMailbox: Sendable {
    private struct Pending {
        var update: MirrorUpdate
        /// How many source updates were merged into `update`.
        var merged: Int
    }

    private let pending = NIOLockedValueBox<Pending?>(nil)
    private let signal: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init() {
        // One buffered wake-up is enough: whoever wakes takes everything pending.
        (signal, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues `update`, merging it into one that has not been taken yet.
    func post(_ update: MirrorUpdate) {
        pending.withLockedValue { pending in
            if var queued = pending {
                queued.update.changes.merge(update.changes)
                queued.update.store = update.store
                queued.update.rebuilt = queued.update.rebuilt || update.rebuilt
                queued.merged += 1
                pending = queued
            } else {
                pending = Pending(update: update, merged: 1)
            }
        }
        wake.yield()
    }

    /// Ends `deliver`'s loop once the pending update (if any) has been handed over.
    func finish() {
        wake.finish()
    }

    /// Calls `handle` for each (coalesced) update, one at a time, in order, until the task is
    /// cancelled or `finish` is called. `merged` says how many source updates it stands for.
    func deliver(_ handle: (_ update: MirrorUpdate, _ merged: Int) async -> Void) async {
        for await _ in signal {
            guard let next = pending.withLockedValue({ pending -> Pending? in
                defer { pending = nil }
                return pending
            }) else { continue }
            await handle(next.update, next.merged)
        }
    }
}
