import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Sync

// The pieces of `run`, as swift-service-lifecycle services. `Run` lists them so that the
// group's reverse-order shutdown on SIGTERM does what a rolling restart needs: DNS listeners
// close first (the new agent, sharing the port, takes every new query), then the feed stops,
// then the HTTP and admin endpoints.

/// Follows the mirror source and applies its updates through the agent, coalescing bursts;
/// repairs nftables drift on a timer. Stops (without error) on graceful shutdown.
struct MirrorFollower: Service {
    let source: any MirrorSource
    let agent: NodeAgent
    let rules: RulesComponent?
    let driftCheckInterval: Duration?
    let logger: Logger

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    // The source only posts; the agent applies, merging what arrived meanwhile.
                    let mailbox = UpdateMailbox()
                    group.addTask { try await source.run { update in mailbox.post(update) } }
                    group.addTask { await mailbox.deliver { update, merged in await agent.handle(update, merged: merged) } }
                    if let rules, let interval = driftCheckInterval {
                        group.addTask { try await Self.repairDrift(rules, every: interval, board: agent.board, logger: logger) }
                    }
                    try await group.next()
                    group.cancelAll()
                }
            }
        } catch is CancellationError {
            // Shutdown: the last applied state stays in the kernel and in DNS until the end.
        }
    }

    /// Periodically re-reads the kernel and repairs what someone else changed.
    private static func repairDrift(_ rules: RulesComponent, every interval: Duration, board: StatusBoard, logger: Logger) async throws {
        while true {
            try await Task.sleep(for: interval)
            do {
                if let sent = try await rules.repairDrift(), !sent.isEmpty {
                    logger.warning("nftables drift repaired: the kernel had been changed behind the agent's back", metadata: ["batch": "\(sent.summary)"])
                    await board.recordDetail(part: "nftables", "lastDriftRepair", "\(Date()): \(sent.summary)")
                }
            } catch {
                logger.error("nftables drift check failed", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// Keeps the DNS responder serving until shutdown, then closes its listeners and leaves a
/// moment for answers already in flight.
struct DNSDrain: Service {
    let dns: DeferredDNS
    let drain: Duration

    func run() async throws {
        try? await gracefulShutdown()
        await dns.shutdown()
        try? await Task.sleep(for: drain)
    }
}

/// The HTTP endpoint (probes, metrics), closed on shutdown.
struct ListenerService: Service {
    let channel: Channel

    func run() async throws {
        try? await gracefulShutdown()
        try? await channel.close()
    }
}

/// The admin socket. On shutdown its file is removed only if it is still this agent's: a
/// newer agent (rolling restart) may have bound the path already. The channel itself is not
/// closed, because NIO unlinks a Unix socket's path on close, whoever owns the path by then;
/// the descriptor goes with the process.
struct AdminService: Service {
    let channel: Channel
    let path: String
    let identity: AdminSocket.FileIdentity?

    func run() async throws {
        try? await gracefulShutdown()
        AdminSocket.removeIfOwned(path: path, identity: identity)
    }
}
