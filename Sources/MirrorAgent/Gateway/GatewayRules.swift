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
    /// Remembers each service's rules (``MirrorTables/services``): a change takes out exactly
    /// what the service put in.
    private var layout: MirrorTables
    /// The exports and gateway addresses `layout` was built from: a new document is compared
    /// service by service, so a one-pod change translates one service, not the document.
    private var appliedExports: [String: ExportedService]?
    private var appliedAddresses: [IPAddress] = []
    private var needsFullReconcile = true
    nonisolated let role: MirrorTables.Role

    /// Clears UDP/SCTP flows pinned to endpoints that went away (none: flows are left alone).
    nonisolated let flows: FlowCleaner?
    /// The port its batches are committed through (``RulesetBackend/commitPort``).
    nonisolated let commitPort: UInt32?

    init(allowedSources: [IPPrefix], backend: sending any RulesetBackend, flows: FlowCleaner? = nil) {
        role = .gateway(allowedSources: allowedSources)
        commitPort = backend.commitPort
        reconciler = Reconciler(backend: backend, tables: role.tableIDs)
        layout = MirrorTables(role: role)
        self.flows = flows
    }

    /// The desired ruleset (tests, `--once`).
    var desired: Ruleset { layout.desired }

    /// Brings the kernel to `document`.
    func apply(_ document: ExportsDocument) throws -> Report {
        let start = ContinuousClock.now
        let addresses = document.gatewayAddresses.compactMap(IPAddress.init)
        let exports = Dictionary(document.exports.map { ($0.key, $0) }, uniquingKeysWith: { _, last in last })
        var scope = DiffScope()
        var stale: [ConntrackSelector] = []
        if let previous = appliedExports {
            // Every service when the gateway's addresses changed, else only those that did.
            let readdressed = addresses != appliedAddresses
            for (key, export) in exports where readdressed || previous[key] != export {
                let old = layout.services[key] ?? []
                let new = GatewayTranslator.rules(for: export, gatewayAddresses: addresses)
                scope.formUnion(layout.setRules(new, forService: key))
                if flows != nil { stale += StaleFlows.selectors(old: old, new: new) }
            }
            for key in previous.keys where exports[key] == nil {
                let old = layout.services[key] ?? []
                scope.formUnion(layout.setRules([], forService: key))
                if flows != nil { stale += StaleFlows.selectors(old: old, new: []) }
            }
        } else {
            // The first document: built in one pass (maps sized once, no diff scope: the
            // kernel is reconciled in full anyway).
            let rules = exports.values.lazy.map { GatewayTranslator.rules(for: $0, gatewayAddresses: addresses) }
            layout = MirrorTables(role: role, services: rules, expectedPorts: exports.count)
        }
        appliedExports = exports
        appliedAddresses = addresses
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
        if !full { flows?.clear(stale) }
        return Report(transaction: transaction, full: full, duration: ContinuousClock.now - start,
                      ports: layout.services.values.reduce(0) { $0 + $1.count })
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
