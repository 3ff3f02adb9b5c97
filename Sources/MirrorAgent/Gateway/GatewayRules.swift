import Logging
import NFTables
import Netlink
import MirrorModel
import MirrorFeed

/// Keeps the kernel's `mirror-gateway` tables in step with the exports document.
///
/// The first document reconciles in full (a restart with an unchanged document sends an
/// empty batch); later ones replace only the services whose rules changed and send that diff
/// as one atomic batch. A refused batch leaves the kernel as it was, and the next document
/// (or drift check) reconciles in full again.
actor GatewayRules {
    /// What one application of a document did.
    struct Report: Sendable {
        var transaction: Transaction
        var full: Bool
        var duration: Duration
        /// Exported service ports in the tables.
        var ports: Int
    }

    private let reconciler: Reconciler
    private var layout: MirrorTables
    private var applied: [String: [ServicePortRule]] = [:]
    private var needsFullReconcile = true
    nonisolated let role: MirrorTables.Role

    /// Clears UDP/SCTP flows pinned to endpoints that went away (none: flows are left alone).
    nonisolated let flows: FlowCleaner?

    init(allowedSources: [IPPrefix], backend: sending any RulesetBackend, flows: FlowCleaner? = nil) {
        role = .gateway(allowedSources: allowedSources)
        reconciler = Reconciler(backend: backend, tables: role.tableIDs)
        layout = MirrorTables(role: role)
        self.flows = flows
    }

    /// The desired ruleset (tests, `--once`).
    var desired: Ruleset { layout.desired }

    /// Brings the kernel to `document`.
    func apply(_ document: ExportsDocument) throws -> Report {
        let start = ContinuousClock.now
        let fresh = GatewayTranslator.rules(for: document)
        var scope = DiffScope()
        var stale: [ConntrackSelector] = []
        for (service, rules) in fresh where applied[service] != rules {
            scope.formUnion(layout.setRules(rules, forService: service))
            if flows != nil, !needsFullReconcile { stale += StaleFlows.selectors(old: applied[service] ?? [], new: rules) }
        }
        for (service, rules) in applied where fresh[service] == nil {
            scope.formUnion(layout.setRules([], forService: service))
            if flows != nil, !needsFullReconcile { stale += StaleFlows.selectors(old: rules, new: []) }
        }
        applied = fresh
        let full = needsFullReconcile
        let transaction: Transaction
        do {
            transaction = full ? try reconciler.reconcile(layout.desired) : try reconciler.update(layout.desired, scope: scope)
        } catch {
            needsFullReconcile = true
            throw error
        }
        needsFullReconcile = false
        // After the commit and off this path, as for the node agent.
        flows?.clear(stale)
        return Report(transaction: transaction, full: full, duration: ContinuousClock.now - start,
                      ports: fresh.values.reduce(0) { $0 + $1.count })
    }

    /// Reads the kernel back and repairs what someone else changed; nil before the first
    /// document.
    func repairDrift() throws -> Transaction? {
        guard !needsFullReconcile else { return nil }
        return try reconciler.reconcile(layout.desired)
    }

    /// Deletes the gateway's tables (`--cleanup-on-exit`).
    func removeTables() throws -> Transaction {
        try reconciler.removeAll()
    }
}
