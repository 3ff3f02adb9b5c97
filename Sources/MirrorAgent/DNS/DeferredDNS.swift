import Foundation
import Logging
import NIOCore
import DNSResponder
import MirrorModel
import MirrorFeed

/// Opens the DNS listeners when the agent can answer correctly, then forwards every update to
/// the ``DNSComponent``.
///
/// - Its own addresses (`--dns-listen`, the link-local default) open with the first mirror
///   state, so a new agent joining a running one's port (rolling restart) answers mirrored
///   names from its first query on — or, when no state has come after `forwardAfter`
///   (feed unreachable, persisted state unreadable), with no mirrored name, forwarding every
///   query: pods pointed at the agent never lose ordinary DNS.
/// - Intercepted cluster DNS addresses open only once a state is applied: until the socket
///   exists the kernel sends those queries to the cluster DNS.
/// A listener that cannot be bound (port in use) is reported and tried again every few
/// seconds; the agent keeps serving what it has.
actor DeferredDNS: MirrorConsumer {
    private let options: DNSOptions
    private let addresses: [SocketAddress]
    private let intercepted: [SocketAddress]
    private let logger: Logger
    private let onStart: @Sendable (DNSComponent) async -> Void
    private var component: DNSComponent?
    /// A state has been loaded into the component's table.
    private var hasState = false
    private var interceptOpen = false
    private var stopped = false
    private var retrying = false
    private var latest: MirrorUpdate?
    /// The first table, being built while nftables is programmed (see ``prepare(_:)``).
    private var firstTable: (revision: UInt64, build: Task<(DNSRecordTable, Set<DNSName>), any Error>)?

    init(options: DNSOptions, addresses: [SocketAddress], intercepted: [SocketAddress], logger: Logger,
         onStart: @escaping @Sendable (DNSComponent) async -> Void) {
        self.options = options
        self.addresses = addresses
        self.intercepted = intercepted
        self.logger = logger
        self.onStart = onStart
    }

    /// Opens the agent's own addresses with no mirrored name after `delay`, unless a state
    /// came first. Returns at once when it does not apply.
    func forwardIfNoState(after delay: Duration) async {
        try? await Task.sleep(for: delay)
        // Another agent already answering here (a surged rollout while the feed is down) has
        // mirrored names this one lacks: joining its port would answer them NXDOMAIN.
        while !stopped, component == nil, latest == nil, let busy = addresses.first(where: UDPPort.isTaken) {
            logger.notice("no mirror state yet, and another process answers DNS on \(busy): not joining it until a state arrives")
            guard (try? await Task.sleep(for: .seconds(2))) != nil else { return }
        }
        guard !stopped, component == nil, latest == nil, !addresses.isEmpty else { return }
        do {
            guard let started = try await DNSComponent.start(options: options, addresses: addresses, logger: logger) else { return }
            // The first state may have arrived (and opened DNS with it) while this one bound:
            // that one wins; this table has no mirrored name.
            guard component == nil, !stopped else {
                await started.close()
                return
            }
            component = started
            logger.warning("no mirror state yet: answering DNS by forwarding every query; mirrored names follow the first state",
                           metadata: ["after": "\(delay)"])
            await onStart(started)
        } catch {
            logger.error("cannot open DNS: \(error)")
        }
    }

    /// Stops answering (see ``DNSComponent/close()``); later updates are ignored.
    func shutdown(draining drain: Duration = .zero) async {
        stopped = true
        let closing = component
        component = nil
        await closing?.close(draining: drain)
    }

    /// Query counters since the listeners opened (nil before).
    func statistics() async -> DNSStatistics? {
        guard let component else { return nil }
        return await component.statistics()
    }

    /// Counters per listen address (empty before the listeners open).
    func statisticsByListener() async -> [(address: SocketAddress, intercepted: Bool, statistics: DNSStatistics)] {
        await component?.statisticsByListener() ?? []
    }

    /// Whether the intercepted addresses have their socket (transparent mode active).
    var intercepting: Bool { interceptOpen }

    /// Before the first state is applied, starts building its table on another thread, so a
    /// restarting agent builds DNS while nftables reconciles; `apply` still opens DNS only after
    /// nftables is done (the agent's order), with the table ready.
    func prepare(_ update: MirrorUpdate) {
        guard !stopped, component == nil, firstTable == nil, !options.disabled else { return }
        let store = update.store
        let ttl = options.ttl
        firstTable = (store.revision, Task.detached { try DNSComponent.buildTable(store, ttl: ttl) })
    }

    func apply(_ update: MirrorUpdate) async throws {
        guard !stopped else { return }
        latest = update
        do {
            try await bring(update)
        } catch {
            scheduleRetry()
            throw error
        }
    }

    /// Takes the component to `update`, opening whatever is not open yet.
    private func bring(_ update: MirrorUpdate) async throws {
        if let component {
            if hasState {
                try await component.apply(update)
            } else {
                // Answering with no state so far: the first one is loaded whole.
                try await component.rebuild(update)
                hasState = true
            }
        } else {
            let clock = ContinuousClock()
            let began = clock.now
            var prebuilt: (DNSRecordTable, Set<DNSName>)?
            if let firstTable, firstTable.revision == update.store.revision {
                prebuilt = try await firstTable.build.value
            }
            firstTable = nil
            guard let started = try await DNSComponent.start(options: options, addresses: addresses, initial: update,
                                                             prebuilt: prebuilt, logger: logger) else { return }
            // A forward-only component opened while this one bound: this one has the state.
            if let forwardOnly = component { await forwardOnly.close() }
            component = started
            hasState = true
            logger.info("DNS records loaded", metadata: ["revision": "\(update.store.revision)", "took": "\(clock.now - began)"])
            await onStart(started)
        }
        if !interceptOpen, !intercepted.isEmpty, let component {
            try await component.open(intercepted, intercepted: true)
            interceptOpen = true
            logger.info("answering the cluster DNS address (transparent mode)",
                        metadata: ["addresses": "\(intercepted.map { "\($0)" }.joined(separator: ", "))"])
            await onStart(component)
        }
    }

    /// Tries again every 5 s until the listeners open (a port in use may be freed).
    private func scheduleRetry() {
        guard !retrying else { return }
        retrying = true
        Task {
            while await self.retryOnce() {
                try? await Task.sleep(for: .seconds(5))
            }
        }
    }

    /// One retry; true while more are needed.
    private func retryOnce() async -> Bool {
        guard !stopped, let latest, component == nil || (!interceptOpen && !intercepted.isEmpty) || !hasState else {
            retrying = false
            return false
        }
        do {
            try await bring(latest)
            logger.info("DNS listeners open after an earlier failure")
            retrying = false
            return false
        } catch {
            logger.debug("DNS listeners still cannot open: \(error)")
            return true
        }
    }
}
