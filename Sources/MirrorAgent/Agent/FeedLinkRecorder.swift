import Foundation
import NIOConcurrencyHelpers
import MirrorModel
import MirrorFeed

/// Whether the agent's feed connection is up, since when, and how often it was lost — what
/// `dump` and `/metrics` show about the feed. Written from the feed client's connection task
/// (hence a lock, not the board's actor), read when someone asks.
final class FeedLinkRecorder: Sendable {
    struct Link: Sendable {
        var connected = false
        /// When the current stream was established, or when the last one was lost.
        var since: Date?
        /// Streams established so far.
        var established = 0
        var lastError: String?

        /// Streams established after the first one.
        var reconnects: Int { max(0, established - 1) }
    }

    private let state = NIOLockedValueBox(Link())

    var link: Link { state.withLockedValue { $0 } }

    func record(_ event: FeedLinkEvent) {
        state.withLockedValue { link in
            switch event {
            case .established:
                link.established += 1
                link.connected = true
                link.since = Date()
            case .lost(let reason):
                if link.connected { link.since = Date() }
                link.connected = false
                link.lastError = reason
            }
        }
    }
}
