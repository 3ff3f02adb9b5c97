/// Which parts of a ruleset a diff must look at. Restricting the scope to what a change
/// touched keeps a one-service update O(that service) instead of O(all elements).
public struct DiffScope: Sendable {
    /// Compare everything.
    public var everything: Bool
    /// Element keys to compare, per table and set.
    public var elementKeys: [TableID: [String: Set<ValueList>]]
    /// Chains (existence and rules) to compare, per table.
    public var chains: [TableID: Set<String>]
    /// What each scoped element was before the change (nil: absent), so an incremental diff
    /// needs no copy of the kernel's state.
    public var previousElements: [TableID: [String: [ValueList: Element?]]] = [:]
    /// The rules each scoped chain had before the change (nil: the chain did not exist).
    public var previousChains: [TableID: [String: [Rule]?]] = [:]

    public static let all = DiffScope(everything: true, elementKeys: [:], chains: [:])

    public init(everything: Bool = false, elementKeys: [TableID: [String: Set<ValueList>]] = [:], chains: [TableID: Set<String>] = [:]) {
        self.everything = everything
        self.elementKeys = elementKeys
        self.chains = chains
    }

    public var isEmpty: Bool { !everything && elementKeys.values.allSatisfy { $0.values.allSatisfy(\.isEmpty) } && chains.values.allSatisfy(\.isEmpty) }

    /// Adds another (later) scope's keys and chains to this one; for objects both touched,
    /// the earlier "previous" value is kept.
    public mutating func formUnion(_ other: DiffScope) {
        everything = everything || other.everything
        for (table, sets) in other.elementKeys {
            for (set, keys) in sets { elementKeys[table, default: [:]][set, default: []].formUnion(keys) }
        }
        for (table, names) in other.chains { chains[table, default: []].formUnion(names) }
        for (table, sets) in other.previousElements {
            for (set, values) in sets {
                for (key, value) in values { record(table, set: set, key: key, previous: value) }
            }
        }
        for (table, chains) in other.previousChains {
            for (name, rules) in chains { record(table, chain: name, previous: rules) }
        }
    }

    /// Puts an element in scope, remembering its value before the first change.
    public mutating func record(_ table: TableID, set: String, key: ValueList, previous: Element?) {
        elementKeys[table, default: [:]][set, default: []].insert(key)
        if previousElements[table]?[set]?.index(forKey: key) == nil {
            previousElements[table, default: [:]][set, default: [:]][key] = .some(previous)
        }
    }

    /// Puts a chain in scope, remembering its rules before the first change (nil: absent).
    public mutating func record(_ table: TableID, chain: String, previous: [Rule]?) {
        chains[table, default: []].insert(chain)
        if previousChains[table]?.index(forKey: chain) == nil {
            previousChains[table, default: [:]][chain] = .some(previous)
        }
    }

    /// The part of the ruleset before the change that this scope covers, shaped like `desired`
    /// (same tables and sets): the "current" side of an incremental diff.
    func previousState(shapedLike desired: Ruleset) -> Ruleset {
        var result = Ruleset()
        for (id, want) in desired.tables {
            var table = Table(id: id)
            table.sets = want.sets
            for (set, values) in previousElements[id] ?? [:] {
                var elements = ElementSet()
                for (key, value) in values { if let value { elements[key] = value } }
                table.elements[set] = elements
            }
            for name in want.sets.keys where table.elements[name] == nil { table.elements[name] = [:] }
            for (name, rules) in previousChains[id] ?? [:] {
                guard let rules else { continue }
                table.chains[name] = want.chains[name] ?? Chain(name: name)
                table.rules[name] = rules
            }
            result[id] = table
        }
        return result
    }
}

extension Ruleset {
    /// The minimal transaction that turns `current` into `desired` for the tables `desired`
    /// holds (tables `current` holds beyond those are deleted).
    ///
    /// Order inside the batch respects references: tables, sets and chains are created first;
    /// elements are removed before the chains their verdicts point at; rules are rewritten
    /// before the sets they use are deleted. A set or base chain whose definition changed
    /// replaces the whole table in the same batch (the packet path never sees a gap).
    public static func diff(current: Ruleset, desired: Ruleset, scope: DiffScope = .all) -> Transaction {
        var transaction = Transaction()
        for id in desired.tables.keys.sorted() {
            guard let want = desired.tables[id] else { continue }
            // Scoped diffs come from incremental changes, which never alter sets or base chains.
            if let have = current.tables[id], !scope.everything || !Self.needsReplacement(have: have, want: want) {
                diffTable(have: have, want: want, scope: scope, into: &transaction)
            } else {
                if current.tables[id] != nil { transaction.add(.deleteTable(id)) }
                create(want, into: &transaction)
            }
        }
        for id in current.tables.keys.sorted() where desired.tables[id] == nil {
            transaction.add(.deleteTable(id))
        }
        return transaction
    }

    /// Operations that create `table` and everything in it.
    static func create(_ table: Table, into transaction: inout Transaction) {
        let id = table.id
        transaction.add(.addTable(id))
        for (_, set) in table.sets.sorted(by: { $0.key < $1.key }) { transaction.add(.addSet(id, set)) }
        for (_, chain) in table.chains.sorted(by: { $0.key < $1.key }) { transaction.add(.addChain(id, chain)) }
        for name in table.chains.keys.sorted() {
            for rule in table.rules[name] ?? [] { transaction.add(.addRule(id, chain: name, rule)) }
        }
        for name in table.sets.keys.sorted() {
            transaction.add(.addElements(id, set: name, ElementList(set: table.elements[name] ?? [:])))
        }
    }

    private static func needsReplacement(have: Table, want: Table) -> Bool {
        for (name, set) in want.sets where have.sets[name].map({ $0 != set }) ?? false { return true }
        for (name, chain) in want.chains where have.chains[name].map({ $0 != chain }) ?? false { return true }
        return false
    }

    private static func diffTable(have: Table, want: Table, scope: DiffScope, into transaction: inout Transaction) {
        let id = have.id
        let chainNames: [String] = scope.everything
            ? Array(Set(have.chains.keys).union(want.chains.keys)).sorted()
            : (scope.chains[id] ?? []).sorted()

        // 1. New sets and chains.
        for (name, set) in want.sets.sorted(by: { $0.key < $1.key }) where have.sets[name] == nil { transaction.add(.addSet(id, set)) }
        for name in chainNames where have.chains[name] == nil {
            if let chain = want.chains[name] { transaction.add(.addChain(id, chain)) }
        }

        // 2. Element changes, computed per set.
        var additions: [(String, [Element])] = []
        for name in want.sets.keys.sorted() {
            let wanted = want.elements[name] ?? [:]
            guard let had = have.elements[name], have.sets[name] != nil else {
                additions.append((name, Array(wanted.values)))
                continue
            }
            var removed: [Element] = []
            var added: [Element] = []
            func compare(_ key: ValueList) {
                let old = had[key], new = wanted[key]
                if old == new { return }
                if let old { removed.append(old) }
                if let new { added.append(new) }
            }
            if scope.everything {
                var found = 0
                for (key, old) in had.entries {
                    let new = wanted[key]
                    if new != nil { found += 1 }
                    if old == new { continue }
                    removed.append(old)
                    if let new { added.append(new) }
                }
                // Every wanted key was among the had keys: nothing new to look for.
                if found != wanted.count {
                    for key in wanted.keys where !had.contains(key) { compare(key) }
                }
            } else {
                for key in scope.elementKeys[id]?[name] ?? [] { compare(key) }
            }
            transaction.add(.deleteElements(id, set: name, ElementList(removed)))
            additions.append((name, added))
        }

        // 3. Rules of new or changed chains.
        for name in chainNames {
            guard let wantedRules = want.rules[name], want.chains[name] != nil else { continue }
            let hadRules = have.chains[name] == nil ? nil : (have.rules[name] ?? [])
            if hadRules == wantedRules { continue }
            if let hadRules, !hadRules.isEmpty { transaction.add(.flushChain(id, name)) }
            for rule in wantedRules { transaction.add(.addRule(id, chain: name, rule)) }
        }

        // 4. New elements (their verdicts may point at the chains created above).
        for (name, elements) in additions { transaction.add(.addElements(id, set: name, ElementList(elements))) }

        // 5. Chains and sets no longer wanted.
        for name in chainNames where want.chains[name] == nil && have.chains[name] != nil {
            if !(have.rules[name] ?? []).isEmpty { transaction.add(.flushChain(id, name)) }
        }
        for name in chainNames where want.chains[name] == nil && have.chains[name] != nil {
            transaction.add(.deleteChain(id, name))
        }
        for name in have.sets.keys.sorted() where want.sets[name] == nil { transaction.add(.deleteSet(id, name)) }
    }
}
