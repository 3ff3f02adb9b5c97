#if canImport(Glibc)
import Glibc
#endif

/// Keeps the kernel's copy of some tables equal to a desired ruleset with minimal batches.
///
/// A full reconcile first checks the ``ReconcileMarker`` an earlier commit left: when the
/// kernel is still at the generation that commit produced and the desired ruleset has the
/// digest it recorded, nothing can differ and nothing is read or sent. Otherwise it reads the
/// owned tables back and sends the whole difference. After that it keeps only the ruleset
/// generation its commit produced (and the ruleset's digest): a small change is diffed from
/// the scope's before/after values and sent bound to that generation, and if anyone else
/// committed in between (the kernel answers ERESTART) it falls back to a full read and diff.
/// Every batch it sends carries a fresh marker. Not thread-safe: one owner.
public final class Reconciler {
    public let backend: any RulesetBackend
    /// The tables this reconciler owns; nothing else is read or touched. The first one holds
    /// the marker.
    public let tables: [TableID]
    private var generation: UInt32?
    /// The digest of what the kernel holds (valid with `generation`).
    private var digest: RulesetDigest?
    private let maximumAttempts = 8
    /// How long the last reconcile or update spent reading the kernel, diffing and committing
    /// (for debug logs).
    public private(set) var lastReadDuration: Duration = .zero
    public private(set) var lastDiffDuration: Duration = .zero
    public private(set) var lastCommitDuration: Duration = .zero
    /// CPU time the committing thread spent in the last commit (its own and the kernel's work
    /// in its system calls): far below ``lastCommitDuration`` means it waited for a CPU.
    public private(set) var lastCommitCPUDuration: Duration = .zero
    /// Whether the last full reconcile was settled by the marker alone (nothing read).
    public private(set) var lastReconcileUsedMarker = false

    public init(backend: any RulesetBackend, tables: [TableID]) {
        self.backend = backend
        self.tables = tables
    }

    /// The ruleset generation our last read or commit left the kernel at; nil when unknown
    /// (before the first reconcile, or after a failure).
    public var knownGeneration: UInt32? { generation }

    /// The marker for a batch at `generation` establishing `digest`, when `desired` holds the
    /// marker's table.
    private func makeMarker(after generation: UInt32, digest: RulesetDigest, desired: Ruleset) -> ReconcileMarker? {
        guard let table = tables.first, desired[table] != nil else { return nil }
        return ReconcileMarker(table: table, generation: ReconcileMarker.generation(after: generation), digest: digest.value)
    }

    /// Makes the kernel hold `desired`: nothing when the marker shows it already does, else
    /// reads the owned tables, diffs them against `desired` in full and commits the
    /// difference as one batch (nothing when they already match).
    ///
    /// - Returns: the transaction that was committed (empty when nothing changed).
    /// - Throws: ``NFTablesError`` (the kernel is left as it was).
    @discardableResult
    public func reconcile(_ desired: Ruleset) throws -> Transaction {
        let clock = ContinuousClock()
        let start = clock.now
        generation = nil
        digest = nil
        let wanted = RulesetDigest(desired)
        if let table = tables.first, desired[table] != nil {
            let (current, marker) = try backend.readMarker(table)
            if let marker, marker.generation == current, marker.digest == wanted.value {
                lastReadDuration = clock.now - start
                lastDiffDuration = .zero
                lastReconcileUsedMarker = true
                generation = current
                digest = wanted
                return Transaction()
            }
        }
        lastReconcileUsedMarker = false
        var attempt = 0
        while true {
            attempt += 1
            var (transaction, current) = try readAndDiff(desired)
            if transaction.isEmpty {
                generation = current
                digest = wanted
                return transaction
            }
            do {
                let commitStart = clock.now
                let cpuStart = Self.threadCPUTime()
                try carryCounters(&transaction, desired: desired)
                let next = try backend.commit(transaction, generation: current,
                                              marker: makeMarker(after: current, digest: wanted, desired: desired))
                lastCommitDuration = clock.now - commitStart
                lastCommitCPUDuration = Self.threadCPUTime() - cpuStart
                // A full diff was applied atomically: the kernel now holds exactly `desired`.
                generation = next
                digest = wanted
                return transaction
            } catch is GenerationChanged {
                if attempt >= maximumAttempts { throw NFTablesError.generationRace(attempts: attempt) }
            }
        }
    }

    /// Reads the owned tables and diffs `desired` against them. The snapshot (a second copy
    /// of every element at 100k services) lives only inside this call: it is freed before the
    /// batch is encoded and sent, so the peak holds one model, not two.
    private func readAndDiff(_ desired: Ruleset) throws -> (Transaction, generation: UInt32) {
        let clock = ContinuousClock()
        let readStart = clock.now
        let snapshot = try backend.read(tables, counters: false)
        lastReadDuration = clock.now - readStart
        let diffStart = clock.now
        let transaction = Ruleset.diff(current: snapshot.ruleset, desired: desired, scope: .all)
        lastDiffDuration = clock.now - diffStart
        return (transaction, snapshot.generation)
    }

    /// Sends the difference for what `scope` names (the objects a change touched, with their
    /// values before the change, as ``MirrorTables`` records them). No copy of the kernel's
    /// state is kept or needed: the batch is bound to the generation of the last commit, so it
    /// applies only if the kernel still holds what we last sent. Falls back to
    /// ``reconcile(_:)`` when the kernel state is unknown or someone else changed the ruleset.
    @discardableResult
    public func update(_ desired: Ruleset, scope: DiffScope) throws -> Transaction {
        guard let known = generation else { return try reconcile(desired) }
        let clock = ContinuousClock()
        let start = clock.now
        var transaction = Ruleset.diff(current: scope.previousState(shapedLike: desired), desired: desired, scope: scope)
        lastDiffDuration = clock.now - start
        if transaction.isEmpty { return transaction }
        var next = digest
        if next?.apply(transaction, result: desired) == false { next = nil }
        do {
            let commitStart = clock.now
            let cpuStart = Self.threadCPUTime()
            try carryCounters(&transaction, desired: desired)
            let marker = next.flatMap { makeMarker(after: known, digest: $0, desired: desired) }
            generation = try backend.commit(transaction, generation: known, marker: marker)
            lastCommitDuration = clock.now - commitStart
            lastCommitCPUDuration = Self.threadCPUTime() - cpuStart
            digest = next
            return transaction
        } catch is GenerationChanged {
            return try reconcile(desired)
        } catch {
            generation = nil
            digest = nil
            throw error
        }
    }

    /// Deletes the owned tables (those that exist) in one batch.
    public func removeAll() throws -> Transaction {
        generation = nil
        digest = nil
        let snapshot = try backend.read(tables, counters: false)
        var transaction = Transaction()
        for id in tables where snapshot.ruleset[id] != nil { transaction.add(.deleteTable(id)) }
        if !transaction.isEmpty { _ = try backend.commit(transaction, generation: nil) }
        return transaction
    }
}

extension Reconciler {
    /// The calling thread's CPU time (commits make no suspension point, so one thread runs
    /// the whole commit).
    static func threadCPUTime() -> Duration {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return .seconds(time.tv_sec) + .nanoseconds(time.tv_nsec)
    }
}
