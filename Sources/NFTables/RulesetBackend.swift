/// Where a ruleset lives: the kernel (``KernelRulesetBackend``) or memory
/// (``FakeRulesetBackend``, for tests of everything above the kernel).
///
/// Not required to be thread-safe: one reconciler owns one backend.
public protocol RulesetBackend: AnyObject {
    /// Reads `tables` (absent tables are simply missing) at one generation; per-element
    /// counters only when `counters` (a reconcile does not need them, `dump` does).
    func read(_ tables: [TableID], counters: Bool) throws -> KernelSnapshot

    /// Applies `transaction` atomically.
    ///
    /// - Parameter generation: when set, the change is applied only if the ruleset is still at
    ///   that generation; otherwise ``GenerationChanged`` is thrown and nothing changes.
    ///   - marker: when set, the batch also replaces the table's ``ReconcileMarker`` (the
    ///     marker is not part of the transaction nor of what ``read(_:counters:)`` returns).
    /// - Returns: the generation after the commit.
    /// - Throws: ``NFTablesError/rejected(_:)`` when any change is refused (nothing is applied).
    func commit(_ transaction: Transaction, generation: UInt32?, marker: ReconcileMarker?) throws -> UInt32

    /// The current generation and the marker `table` holds (nil when none, or when the
    /// ruleset changed while reading it).
    func readMarker(_ table: TableID) throws -> (generation: UInt32, marker: ReconcileMarker?)

    /// The counters of a few elements, each looked up alone (absent elements and elements
    /// without a counter are missing from the result). Used to carry a counter over when an
    /// element is replaced; a backend without counters returns none.
    func readCounters(_ elements: [ElementAddress]) throws -> [ElementAddress: Counter]

    /// The netlink port id batches are committed through: nf_tables change notifications
    /// caused by them carry it as their sender, so a follower can tell its own commits from
    /// someone else's. Nil for a backend that is not the kernel.
    var commitPort: UInt32? { get }
}

extension RulesetBackend {
    /// Reads `tables` with their counters.
    public func read(_ tables: [TableID]) throws -> KernelSnapshot { try read(tables, counters: true) }

    public var commitPort: UInt32? { nil }

    /// No counters (the default for backends that keep none).
    public func readCounters(_ elements: [ElementAddress]) throws -> [ElementAddress: Counter] { [:] }

    /// Applies `transaction` atomically, without a marker.
    public func commit(_ transaction: Transaction, generation: UInt32?) throws -> UInt32 {
        try commit(transaction, generation: generation, marker: nil)
    }
}

/// The ruleset moved on since the generation a batch was bound to; read again and retry.
public struct GenerationChanged: Error, CustomStringConvertible {
    public var description: String { "the nftables ruleset changed since it was read (generation mismatch)" }
}

/// An in-memory ruleset with the kernel's error behaviour, for unit tests (like knftables' fake).
public final class FakeRulesetBackend: RulesetBackend {
    public private(set) var ruleset: Ruleset
    public private(set) var generation: UInt32 = 1
    /// Every transaction committed, in order (for "minimal batch" assertions).
    public private(set) var commits: [Transaction] = []

    public init(_ ruleset: Ruleset = Ruleset()) {
        self.ruleset = ruleset
    }

    public func read(_ tables: [TableID], counters: Bool) throws -> KernelSnapshot {
        var selected = Ruleset()
        for id in tables { selected[id] = ruleset[id] }
        return KernelSnapshot(ruleset: selected, counters: [:], generation: generation)
    }

    /// The marker the last commit left (kept beside the ruleset, as the kernel's is hidden
    /// from reads).
    public private(set) var marker: ReconcileMarker?

    public func commit(_ transaction: Transaction, generation expected: UInt32?, marker: ReconcileMarker?) throws -> UInt32 {
        if let expected, expected != generation { throw GenerationChanged() }
        try ruleset.apply(transaction)
        commits.append(transaction)
        generation = ReconcileMarker.generation(after: generation)
        if let marker { self.marker = marker }
        return generation
    }

    public func readMarker(_ table: TableID) throws -> (generation: UInt32, marker: ReconcileMarker?) {
        (generation, marker?.table == table ? marker : nil)
    }

    /// Simulates another process changing the ruleset (bumps the generation).
    public func externalChange(_ change: (inout Ruleset) -> Void) {
        change(&ruleset)
        generation = ReconcileMarker.generation(after: generation)
    }
}
