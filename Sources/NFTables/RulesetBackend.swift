/// Where a ruleset lives: the kernel (``KernelRulesetBackend``) or memory
/// (``FakeRulesetBackend``, for tests of everything above the kernel).
///
/// Not required to be thread-safe: one reconciler owns one backend.
public protocol RulesetBackend: AnyObject {
    /// Reads `tables` (absent tables are simply missing) with counters, at one generation.
    func read(_ tables: [TableID]) throws -> KernelSnapshot

    /// Applies `transaction` atomically.
    ///
    /// - Parameter generation: when set, the change is applied only if the ruleset is still at
    ///   that generation; otherwise ``GenerationChanged`` is thrown and nothing changes.
    /// - Returns: the generation after the commit.
    /// - Throws: ``NFTablesError/rejected(_:)`` when any change is refused (nothing is applied).
    func commit(_ transaction: Transaction, generation: UInt32?) throws -> UInt32
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

    public func read(_ tables: [TableID]) throws -> KernelSnapshot {
        var selected = Ruleset()
        for id in tables { selected[id] = ruleset[id] }
        return KernelSnapshot(ruleset: selected, counters: [:], generation: generation)
    }

    public func commit(_ transaction: Transaction, generation expected: UInt32?) throws -> UInt32 {
        if let expected, expected != generation { throw GenerationChanged() }
        try ruleset.apply(transaction)
        commits.append(transaction)
        generation &+= 1
        return generation
    }

    /// Simulates another process changing the ruleset (bumps the generation).
    public func externalChange(_ change: (inout Ruleset) -> Void) {
        change(&ruleset)
        generation &+= 1
    }
}
