import Foundation
import Logging
import NFTables
import Netlink
import MirrorModel
import MirrorFeed

#if canImport(Glibc)
import Glibc
#endif

/// Keeps the kernel's `mirror-agent` tables in step with the mirror state.
///
/// The first update reconciles in full: the agent's tables are read back and only the
/// difference is sent (a restart with unchanged state sends nothing, so traffic never stops).
/// Later updates re-translate only the services the change touched and send a batch bound to
/// the ruleset generation; if anyone else committed meanwhile, it reads back and diffs in full.
/// A refused batch leaves the kernel as it was; the next update retries with a full diff.
actor RulesComponent: MirrorConsumer {
    private let reconciler: Reconciler
    private var layout: MirrorTables
    /// The mirror state `layout` was last brought to: a changed service's previous rules are
    /// translated again from it instead of being kept per service (~20 MB at 100k services).
    /// The store shares its storage with the agent's copy, which copies only the chunks a
    /// change touches.
    private var applied: MirrorStore?
    private var needsFullReconcile = true
    private let logger: Logger
    private let flows: FlowCleaner?
    /// The port its batches are committed through (``RulesetBackend/commitPort``).
    nonisolated let commitPort: UInt32?

    /// Opens the kernel backend in the current network namespace.
    /// - Throws: ``NFTablesError/unavailable(_:)`` without permission or nf_tables.
    init(dnsAddresses: [IPAddress], interceptedDNS: [IPAddress] = [], logger: Logger) throws {
        self.init(backend: try KernelRulesetBackend(), dnsAddresses: dnsAddresses, interceptedDNS: interceptedDNS, logger: logger,
                  flows: FlowCleaner(logger: logger))
    }

    /// Uses `backend` (the kernel, or a fake in tests) and `flows` to clear stale UDP/SCTP
    /// flows after each change (none: flows are left alone).
    init(backend: sending any RulesetBackend, dnsAddresses: [IPAddress], interceptedDNS: [IPAddress] = [], logger: Logger,
         flows: FlowCleaner? = nil) {
        commitPort = backend.commitPort
        reconciler = Reconciler(backend: backend, tables: MirrorTables.tableIDs)
        layout = MirrorTables(dnsAddresses: dnsAddresses, interceptedDNS: interceptedDNS, rememberingRules: false)
        self.logger = logger
        self.flows = flows
    }

    /// Conntrack cleanup totals for `dump` and `/metrics`; nil when flows are left alone.
    func flowStatistics() -> FlowCleaner.Statistics? { flows?.statistics }

    /// Waits for queued conntrack cleanups (tests).
    func drainFlowCleanups() { flows?.drain() }

    /// The desired ruleset for the last applied update.
    var desired: Ruleset { layout.desired }

    func apply(_ update: MirrorUpdate) async throws {
        _ = try applyAndReport(update)
    }

    /// Applies `update` and returns the transaction sent to the kernel (empty when nothing
    /// changed); used by `--once` and the tests.
    func applyAndReport(_ update: MirrorUpdate) throws -> Transaction {
        let start = ContinuousClock.now
        let transaction: Transaction
        do {
            if let previous = needsFullReconcile ? nil : applied {
                var scope = DiffScope()
                var stale: [ConntrackSelector] = []
                let services = RulesTranslator.affectedServices(update.changes, store: update.store)
                for key in services {
                    scope.formUnion(retranslate(key, from: previous, to: update.store, stale: &stale))
                }
                for key in RulesTranslator.affectedPolicies(update.changes, services: services, store: update.store, previous: previous) {
                    scope.formUnion(retranslate(key, from: previous, to: update.store, stale: &stale))
                }
                applied = update.store
                let translated = ContinuousClock.now - start
                transaction = try reconciler.update(layout.desired, scope: scope)
                // After the commit (a flow deleted earlier could be re-created by its next
                // packet under the old rules), and off this path.
                flows?.clear(stale)
                logger.debug("incremental update", metadata: [
                    "translate_ms": "\(String(format: "%.3f", translated.milliseconds))",
                    "diff_ms": "\(String(format: "%.3f", reconciler.lastDiffDuration.milliseconds))",
                    "commit_ms": "\(String(format: "%.3f", reconciler.lastCommitDuration.milliseconds))",
                    "commit_cpu_ms": "\(String(format: "%.3f", reconciler.lastCommitCPUDuration.milliseconds))",
                ])
            } else {
                // The previous layout goes first, so two full models never coexist; services
                // are translated one at a time as the layout takes them (no array of all rules).
                let (dnsAddresses, intercepted) = (layout.dnsAddresses, layout.interceptedDNS)
                layout = MirrorTables(dnsAddresses: dnsAddresses, interceptedDNS: intercepted, rememberingRules: false)
                applied = nil
                layout = RulesTranslator.layout(for: update.store, dnsAddresses: dnsAddresses, interceptedDNS: intercepted)
                applied = update.store
                logger.debug("translated mirror state", metadata: [
                    "duration_ms": "\(String(format: "%.3f", (ContinuousClock.now - start).milliseconds))",
                ])
                transaction = try reconciler.reconcile(layout.desired)
                logger.debug("full reconcile", metadata: [
                    "checked": "\(reconciler.lastReconcileUsedMarker ? "marker" : "read-back")",
                    "read_ms": "\(String(format: "%.3f", reconciler.lastReadDuration.milliseconds))",
                    "diff_ms": "\(String(format: "%.3f", reconciler.lastDiffDuration.milliseconds))",
                    "commit_ms": "\(String(format: "%.3f", transaction.isEmpty ? 0 : reconciler.lastCommitDuration.milliseconds))",
                ])
            }
        } catch {
            needsFullReconcile = true
            throw error
        }
        let full = needsFullReconcile
        needsFullReconcile = false
        let elapsed = ContinuousClock.now - start
        logger.info("nftables in sync", metadata: [
            "revision": "\(update.store.revision)",
            "mode": "\(full ? "full" : "incremental")",
            "batch": "\(transaction.summary)",
            "duration_ms": "\(String(format: "%.3f", elapsed.milliseconds))",
        ])
        return transaction
    }

    /// Replaces the rules of one service as translated from `previous` (none when it was not
    /// there) by those translated from `store` (none when it is gone); returns the scope.
    /// Translation is a pure function of the state, so the rules taken out are exactly those
    /// that were put in.
    private func retranslate(_ key: ServiceKey, from previous: MirrorStore, to store: MirrorStore,
                             stale: inout [ConntrackSelector]) -> DiffScope {
        let old = previous.services[key].map { RulesTranslator.rules(for: $0, clusters: previous.clusters) } ?? []
        let fresh = store.services[key].map { RulesTranslator.rules(for: $0, clusters: store.clusters) } ?? []
        if flows != nil { stale += StaleFlows.selectors(old: old, new: fresh) }
        return layout.replaceRules(old, with: fresh)
    }

    /// Replaces the rules of one traffic policy as translated from `previous` by those
    /// translated from `store` (none where it is absent), as for a service.
    private func retranslate(_ key: PolicyKey, from previous: MirrorStore, to store: MirrorStore,
                             stale: inout [ConntrackSelector]) -> DiffScope {
        let old = previous.policies[key].map { RulesTranslator.rules(for: $0, store: previous) } ?? []
        let fresh = store.policies[key].map { RulesTranslator.rules(for: $0, store: store) } ?? []
        if flows != nil { stale += StaleFlows.selectors(old: RulesTranslator.flowRules(old), new: RulesTranslator.flowRules(fresh)) }
        return layout.replacePolicyRules(old, with: fresh)
    }

    /// Whether the kernel holds exactly the desired tables.
    ///
    /// When the ruleset is still at the generation our last (acknowledged, atomic) batch
    /// produced from a snapshot of that same lineage, it holds what we computed; only if
    /// someone committed since is the kernel read back and compared in full.
    func kernelMatchesDesired() throws -> Bool {
        if let known = reconciler.knownGeneration, let kernel = reconciler.backend as? KernelRulesetBackend,
           try kernel.generation() == known {
            return true
        }
        let snapshot = try reconciler.backend.read(MirrorTables.tableIDs, counters: false)
        return Ruleset.diff(current: snapshot.ruleset, desired: layout.desired).isEmpty
    }

    /// Reads the kernel back and sends whatever brings it to the desired state: repairs drift
    /// (someone deleting or editing the agent's tables). Returns what was sent (empty when the
    /// kernel was intact). Does nothing before the first update.
    func repairDrift() throws -> Transaction? {
        guard !needsFullReconcile else { return nil }
        return try reconciler.reconcile(layout.desired)
    }

    /// Deletes the agent's tables.
    func removeTables() throws -> Transaction {
        try reconciler.removeAll()
    }
}

extension Duration {
    /// The duration in (fractional) milliseconds, for logs.
    var milliseconds: Double {
        let parts = components
        return Double(parts.seconds) * 1000 + Double(parts.attoseconds) / 1e15
    }
}
