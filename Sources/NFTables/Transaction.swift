/// One change to the kernel's ruleset. A ``Transaction`` is an ordered list of these, applied
/// by the kernel as one atomic batch.
public enum Operation: Sendable, Equatable {
    case addTable(TableID)
    case deleteTable(TableID)
    case addChain(TableID, Chain)
    case flushChain(TableID, String)
    case deleteChain(TableID, String)
    case addRule(TableID, chain: String, Rule)
    case addSet(TableID, NFTSet)
    case deleteSet(TableID, String)
    /// Removes every element of a set (no error when it is already empty).
    case flushSet(TableID, String)
    case addElements(TableID, set: String, ElementList)
    /// Only the elements' keys matter; the rest names the owner in errors.
    case deleteElements(TableID, set: String, ElementList)

    public var table: TableID {
        switch self {
        case .addTable(let t), .deleteTable(let t), .addChain(let t, _), .flushChain(let t, _), .deleteChain(let t, _),
             .addRule(let t, _, _), .addSet(let t, _), .deleteSet(let t, _), .flushSet(let t, _), .addElements(let t, _, _), .deleteElements(let t, _, _):
            t
        }
    }

    /// nft command syntax (`nft -f` accepts it).
    public var command: String {
        switch self {
        case .addTable(let t): return "add table \(t)"
        case .deleteTable(let t): return "delete table \(t)"
        case .addChain(let t, let chain):
            guard let base = chain.base else { return "add chain \(t) \(chain.name)" }
            return "add chain \(t) \(chain.name) { type \(base.kind.rawValue) hook \(base.hook.rawValue) priority \(base.priority); policy accept; }"
        case .flushChain(let t, let name): return "flush chain \(t) \(name)"
        case .deleteChain(let t, let name): return "delete chain \(t) \(name)"
        case .addRule(let t, let chain, let rule): return "add rule \(t) \(chain) \(rule.text)"
        case .addSet(let t, let set):
            return "add \(set.isMap ? "map" : "set") \(t) \(set.name) { \(set.declaration.replacingNewlines); }"
        case .deleteSet(let t, let name): return "delete set \(t) \(name)"
        case .flushSet(let t, let name): return "flush set \(t) \(name)"
        case .addElements(let t, let set, let elements):
            return "add element \(t) \(set) { \(elements.map(\.description).joined(separator: ", ")) }"
        case .deleteElements(let t, let set, let elements):
            return "delete element \(t) \(set) { \(elements.map { $0.key.map(\.description).joined(separator: " . ") }.joined(separator: ", ")) }"
        }
    }
}

extension String {
    fileprivate var replacingNewlines: String {
        split(separator: "\n").map { $0.trimmingLeadingTabs }.joined(separator: "; ")
    }
}

extension Substring {
    fileprivate var trimmingLeadingTabs: Substring { drop { $0 == "\t" } }
}

/// An ordered list of ruleset changes that the kernel applies all together or not at all.
///
/// Queuing validates nothing against the kernel; ``RulesetBackend/commit(_:)`` does. The
/// transaction prints itself as nft commands (for logs and `--print-ruleset`-style debugging).
public struct Transaction: Sendable, Equatable, CustomStringConvertible {
    public private(set) var operations: [Operation] = []
    /// Initial counters for elements this transaction adds, by where they are added. An element
    /// that replaces another one (same key, new value: a service whose number of targets
    /// changed) starts from the old element's packets and bytes instead of zero, so the
    /// per-service counters `dump` shows survive the replacement. Empty for most batches.
    public var carriedCounters: [ElementAddress: Counter] = [:]

    public init(_ operations: [Operation] = []) {
        self.operations = operations
    }

    public mutating func add(_ operation: Operation) {
        if case .addElements(_, _, let elements) = operation, elements.isEmpty { return }
        if case .deleteElements(_, _, let elements) = operation, elements.isEmpty { return }
        operations.append(operation)
    }

    public var isEmpty: Bool { operations.isEmpty }

    /// Counts per kind of change, e.g. for "minimal batch" checks and logs.
    public var summary: TransactionSummary {
        var summary = TransactionSummary()
        for operation in operations {
            switch operation {
            case .addTable: summary.tablesAdded += 1
            case .deleteTable: summary.tablesDeleted += 1
            case .addChain: summary.chainsAdded += 1
            case .flushChain: summary.chainsFlushed += 1
            case .deleteChain: summary.chainsDeleted += 1
            case .addRule: summary.rulesAdded += 1
            case .addSet: summary.setsAdded += 1
            case .deleteSet: summary.setsDeleted += 1
            case .flushSet: summary.setsFlushed += 1
            case .addElements(_, _, let elements): summary.elementsAdded += elements.count
            case .deleteElements(_, _, let elements): summary.elementsDeleted += elements.count
            }
        }
        return summary
    }

    /// The transaction as an `nft -f` script.
    public var description: String { operations.map(\.command).joined(separator: "\n") }
}

/// One element of one set: where a counter is read from or carried to.
public struct ElementAddress: Hashable, Sendable {
    public var table: TableID
    public var set: String
    public var key: ValueList

    public init(table: TableID, set: String, key: ValueList) {
        self.table = table
        self.set = set
        self.key = key
    }
}

/// How many objects of each kind a transaction touches.
public struct TransactionSummary: Equatable, Sendable, CustomStringConvertible {
    public var tablesAdded = 0, tablesDeleted = 0
    public var chainsAdded = 0, chainsFlushed = 0, chainsDeleted = 0
    public var rulesAdded = 0
    public var setsAdded = 0, setsDeleted = 0, setsFlushed = 0
    public var elementsAdded = 0, elementsDeleted = 0

    public init() {}

    public var description: String {
        let parts = [("tables+", tablesAdded), ("tables-", tablesDeleted), ("chains+", chainsAdded), ("chains~", chainsFlushed),
                     ("chains-", chainsDeleted), ("rules+", rulesAdded), ("sets+", setsAdded), ("sets-", setsDeleted), ("sets~", setsFlushed),
                     ("elements+", elementsAdded), ("elements-", elementsDeleted)]
        let nonzero = parts.filter { $0.1 != 0 }.map { "\($0.0)\($0.1)" }
        return nonzero.isEmpty ? "empty" : nonzero.joined(separator: " ")
    }
}
