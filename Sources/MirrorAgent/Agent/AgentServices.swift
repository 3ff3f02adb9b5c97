import Foundation
import Logging
import NFTables
import NIOCore
import Netlink
import ServiceLifecycle
import Synchronization
import MirrorModel
import MirrorFeed

// The pieces of `run`, as swift-service-lifecycle services. `Run` lists them so that the
// group's reverse-order shutdown on SIGTERM does what a rolling restart needs: DNS listeners
// close first (the new agent, sharing the port, takes every new query), then the feed stops,
// then the HTTP and admin endpoints.

/// Follows the mirror source and applies its updates through the agent, coalescing bursts;
/// repairs nftables drift as soon as another process touches the agent's tables, and on a
/// timer as a backstop. Stops (without error) on graceful shutdown.
struct MirrorFollower: Service {
    let source: any MirrorSource
    let agent: NodeAgent
    let rules: RulesComponent?
    /// The periodic drift check; nil turns drift repair off (the timer and the monitor).
    let driftCheckInterval: Duration?
    let logger: Logger
    /// Opens the nf_tables change monitor in the network namespace of the rules (the calling
    /// thread's, for the agent; tests open it inside their namespace).
    var openMonitor: DriftWatch.OpenMonitor = DriftWatch.openInCurrentNamespace

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
                        let board = agent.board
                        if let watch = DriftWatch(tables: MirrorTables.tableIDs, owner: "agent", ownPort: rules.commitPort, checkInterval: interval,
                                                  open: openMonitor, logger: logger) {
                            group.addTask {
                                try await watch.run(repair: { try await rules.repairDrift() }) { sent, trigger, elapsed in
                                    await board.recordDetail(part: "nftables", "lastDriftRepair",
                                                             "\(Date()): \(sent.summary) (\(DriftWatch.milliseconds(elapsed)) ms after \(trigger.cause))")
                                }
                            }
                        }
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

/// Repairs drift as soon as another process touches some tables: follows the kernel's
/// nf_tables notifications (``RulesetMonitor``), keeps those that concern the tables and were
/// not caused by this process's own batches (or that say notifications were lost), lets the
/// burst settle for `coalescing` (a `nft flush ruleset` or a firewall reload is many
/// messages, maybe several batches) and then repairs once.
///
/// Another writer that undoes every repair at once (a second agent with other state, a tool
/// enforcing its own copy of the tables) would make the two fight in a tight loop: from the
/// third change in a row that arrives within a second of the repair before it, each one
/// doubles a pause before the next repair, from 1 s up to the periodic check's interval; a
/// change after a quiet second is repaired at once again.
final class DriftWatch: Sendable {
    typealias OpenMonitor = @Sendable (_ onEvent: @escaping @Sendable (RulesetMonitor.Event) -> Void) throws -> RulesetMonitor

    /// Opens the monitor in the calling thread's network namespace (the process's, for the agent).
    static let openInCurrentNamespace: OpenMonitor = { try RulesetMonitor(onEvent: $0) }

    /// What set off a repair: the relevant notifications since the last one.
    struct Trigger: Sendable {
        /// When the first arrived.
        var first: ContinuousClock.Instant
        var events = 0
        /// Per touched table, the notification that says most: the first one, unless the table
        /// itself was deleted.
        var tables: [String: String] = [:]
        var senders: Set<UInt32> = []
        var overflowed = false

        init(first: ContinuousClock.Instant) { self.first = first }

        mutating func add(_ event: RulesetMonitor.Event) {
            events += 1
            switch event {
            case .changed(let change):
                senders.insert(change.sender)
                let table = "\(RulesetMonitor.familyName(change.family)) \(change.table)"
                if tables[table] == nil || change.deletesTable { tables[table] = change.what }
            case .overflowed:
                overflowed = true
            }
        }

        /// `delete table ip mirror-agent, delete table ip6 mirror-agent by port 4242`.
        var cause: String {
            var parts = tables.keys.sorted().compactMap { tables[$0] }
            if overflowed { parts.append("nf_tables notifications lost (receive queue overflowed)") }
            let ports = senders.sorted().map(String.init).joined(separator: ", ")
            return parts.joined(separator: ", ") + (senders.isEmpty ? "" : " by port \(ports)")
        }
    }

    private let monitor: RulesetMonitor
    private let inbox: Inbox
    private let coalescing: Duration
    private let maximumPause: Duration
    private let owner: String
    private let logger: Logger

    /// Opens the monitor; nil (with a warning: the periodic check then repairs alone) when it
    /// cannot be opened, e.g. without CAP_NET_ADMIN or on a kernel without nf_tables events.
    ///
    /// - Parameters:
    ///   - owner: who owns the tables, for logs (`agent`, `gateway`).
    ///   - ownPort: the port the owner commits through: its own changes are not drift.
    ///   - checkInterval: the periodic check's interval (the longest pause against a fight).
    init?(tables: [TableID], owner: String, ownPort: UInt32?, checkInterval: Duration, coalescing: Duration = .milliseconds(50),
          open: OpenMonitor, logger: Logger) {
        let inbox = Inbox(tables: tables, ownPort: ownPort)
        do {
            monitor = try open { inbox.receive($0) }
        } catch {
            logger.warning("cannot follow nf_tables changes; drift is repaired by the periodic check only",
                           metadata: ["every_s": "\(checkInterval.components.seconds)", "error": "\(error)"])
            return nil
        }
        self.inbox = inbox
        self.coalescing = coalescing
        self.owner = owner
        maximumPause = max(checkInterval, .seconds(1))
        self.logger = logger
        logger.debug("following nf_tables changes to repair drift at once",
                     metadata: ["tables": "\(tables.map(\.description).joined(separator: ", "))", "monitor_port": "\(monitor.portID)"])
    }

    deinit { monitor.stop() }

    /// Repairs after each relevant burst until the task is cancelled; `repaired` is told what
    /// a repair sent (when it sent anything) and how long after the first notification it
    /// was done.
    func run(repair: @Sendable () async throws -> Transaction?,
             repaired: @Sendable (_ sent: Transaction, _ trigger: Trigger, _ elapsed: Duration) async -> Void) async throws {
        defer { monitor.stop() }
        var lastSent: ContinuousClock.Instant?
        var quickChanges = 0
        var pause = Duration.zero
        for await _ in inbox.signal {
            guard let first = inbox.firstPending else { continue }
            try await Task.sleep(for: coalescing)
            if let lastSent, first - lastSent < .seconds(1) {
                quickChanges += 1
            } else {
                quickChanges = 0
                pause = .zero
            }
            if quickChanges >= 3 {
                pause = min(max(pause * 2, .seconds(1)), maximumPause)
                logger.warning("nftables: another process keeps changing the \(owner)'s tables right after each repair; slowing repairs down",
                               metadata: ["pause_ms": "\(Self.milliseconds(pause))", "cause": "\(inbox.peekCause ?? "")"])
                try await Task.sleep(for: pause)
            }
            guard let trigger = inbox.take() else { continue }
            logger.debug("nftables: the \(owner)'s tables were changed by another process; checking them",
                         metadata: ["cause": "\(trigger.cause)", "notifications": "\(trigger.events)"])
            do {
                if let sent = try await repair(), !sent.isEmpty {
                    let elapsed = ContinuousClock.now - trigger.first
                    lastSent = .now
                    logger.warning("nftables drift repaired right after another process changed the \(owner)'s tables", metadata: [
                        "cause": "\(trigger.cause)", "notifications": "\(trigger.events)",
                        "after_ms": "\(Self.milliseconds(elapsed))", "batch": "\(sent.summary)",
                    ])
                    await repaired(sent, trigger, elapsed)
                }
            } catch {
                logger.error("nftables drift check failed", metadata: ["error": "\(error)", "cause": "\(trigger.cause)"])
            }
        }
        throw CancellationError()
    }

    static func milliseconds(_ duration: Duration) -> String {
        String(format: "%.0f", duration.milliseconds)
    }

    /// Filters notifications on the monitor's thread and gathers the relevant ones until the
    /// repair loop takes them; one buffered wake-up stands for any number of them.
    final class Inbox: Sendable {
        private let tables: Set<TableKey>
        private let ownPort: UInt32?
        private let pending = Mutex<Trigger?>(nil)
        let signal: AsyncStream<Void>
        private let wake: AsyncStream<Void>.Continuation

        private struct TableKey: Hashable {
            var family: UInt8
            var name: String
        }

        init(tables: [TableID], ownPort: UInt32?) {
            self.ownPort = ownPort
            self.tables = Set(tables.map { TableKey(family: UInt8($0.family.protocolFamily), name: $0.name) })
            (signal, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        }

        /// Called for every notification: keeps changes to the tables by other processes, and
        /// lost notifications.
        func receive(_ event: RulesetMonitor.Event) {
            switch event {
            case .changed(let change):
                guard tables.contains(TableKey(family: change.family, name: change.table)),
                      change.sender != ownPort else { return }
            case .overflowed:
                break
            }
            let first = pending.withLock { pending -> Bool in
                var trigger = pending ?? Trigger(first: .now)
                trigger.add(event)
                defer { pending = trigger }
                return trigger.events == 1
            }
            // Later ones are taken together with the first.
            if first { wake.yield() }
        }

        var firstPending: ContinuousClock.Instant? { pending.withLock { $0?.first } }
        var peekCause: String? { pending.withLock { $0?.cause } }

        func take() -> Trigger? {
            pending.withLock { pending in
                defer { pending = nil }
                return pending
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
        // New queries go to the other agent sharing the port at once; the queued ones are
        // answered; then the sockets close, and forwarded answers still in flight get a moment.
        await dns.shutdown(draining: drain)
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
