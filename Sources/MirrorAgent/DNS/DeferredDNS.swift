import Foundation
import Logging
import DNSResponder
import MirrorModel
import MirrorFeed

/// Opens the DNS listeners only once the first mirror state is known, then forwards every
/// update to the ``DNSComponent``.
///
/// A new agent joining a running one's port (rolling restart) therefore answers mirrored
/// names from its first query on. Failing to bind is fatal: a node agent that cannot serve
/// DNS must be restarted, not limp on.
actor DeferredDNS: MirrorConsumer {
    private let options: DNSOptions
    private let logger: Logger
    private let onStart: @Sendable (DNSComponent) async -> Void
    private var component: DNSComponent?
    private var stopped = false
    /// The first table, being built while nftables is programmed (see ``prepare(_:)``).
    private var firstTable: (revision: UInt64, build: Task<(DNSRecordTable, Set<DNSName>), any Error>)?

    init(options: DNSOptions, logger: Logger, onStart: @escaping @Sendable (DNSComponent) async -> Void) {
        self.options = options
        self.logger = logger
        self.onStart = onStart
    }

    /// Stops answering (see ``DNSComponent/close()``); later updates are ignored.
    func shutdown() async {
        await component?.close()
        component = nil
        stopped = true
    }

    /// Query counters since the listeners opened (nil before).
    func statistics() async -> DNSStatistics? {
        guard let component else { return nil }
        return await component.statistics()
    }

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
        if let component {
            try await component.apply(update)
            return
        }
        do {
            let clock = ContinuousClock()
            let began = clock.now
            var prebuilt: (DNSRecordTable, Set<DNSName>)?
            if let firstTable, firstTable.revision == update.store.revision {
                prebuilt = try await firstTable.build.value
            }
            firstTable = nil
            guard let started = try await DNSComponent.start(options: options, initial: update, prebuilt: prebuilt, logger: logger) else { return }
            component = started
            logger.info("DNS records loaded", metadata: ["revision": "\(update.store.revision)", "took": "\(clock.now - began)"])
            await onStart(started)
        } catch {
            printError("mirror-agent run: \(error)")
            exit(1)
        }
    }
}
