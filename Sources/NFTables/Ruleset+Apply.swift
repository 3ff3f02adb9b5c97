#if canImport(Glibc)
import Glibc
#endif

extension Ruleset {
    /// Applies `transaction` in memory with the kernel's rules (missing objects → ENOENT,
    /// objects in use → EBUSY, an element re-added with other data → EBUSY), all or nothing.
    ///
    /// Used by ``FakeRulesetBackend`` and to keep the agent's copy of what the kernel holds.
    /// - Throws: ``NFTablesError/rejected(_:)`` naming the first refused change; `self` is unchanged.
    public mutating func apply(_ transaction: Transaction) throws {
        var copy = self
        for operation in transaction.operations { try copy.apply(operation, checkReferences: true) }
        self = copy
    }

    /// Like ``apply(_:)`` but mutates in place and skips the reference checks that cost a scan
    /// of every element (a chain still named by a verdict), for callers whose transaction the
    /// kernel already accepted. On error `self` may be partly changed.
    public mutating func applyInPlace(_ transaction: Transaction) throws {
        for operation in transaction.operations { try apply(operation, checkReferences: false) }
    }

    private func reject(_ operation: Operation, _ subject: String, _ code: Int32) -> NFTablesError {
        var change = operation.command
        if change.count > 200 { change = String(change.prefix(200)) + " …" }
        return .rejected([RejectedChange(change: change, subject: subject, errno: code)])
    }

    private mutating func apply(_ operation: Operation, checkReferences: Bool) throws {
        let id = operation.table
        if case .addTable = operation {
            if tables[id] == nil { tables[id] = Table(id: id) }
            return
        }
        guard var table = tables[id] else { throw reject(operation, "table \(id)", ENOENT) }
        tables[id] = nil // keep `table` uniquely referenced while we mutate it
        defer { if case .deleteTable = operation {} else { tables[id] = table } }
        switch operation {
        case .addTable, .deleteTable:
            break
        case .addChain(_, let chain):
            if let existing = table.chains[chain.name], existing != chain { throw reject(operation, "chain \(chain.name)", EEXIST) }
            table.add(chain)
        case .flushChain(_, let name):
            guard table.chains[name] != nil else { throw reject(operation, "chain \(name)", ENOENT) }
            table.rules[name] = []
        case .deleteChain(_, let name):
            guard table.chains[name] != nil else { throw reject(operation, "chain \(name)", ENOENT) }
            guard (table.rules[name] ?? []).isEmpty else { throw reject(operation, "chain \(name)", EBUSY) }
            if checkReferences {
                for elements in table.elements.values
                where elements.values.contains(where: { $0.data == .verdict(.goto(name)) || $0.data == .verdict(.jump(name)) }) {
                    throw reject(operation, "chain \(name)", EBUSY)
                }
            }
            table.removeChain(name)
        case .addRule(_, let chain, let rule):
            guard table.chains[chain] != nil else { throw reject(operation, "chain \(chain)", ENOENT) }
            for expression in rule.expressions {
                if let set = expression.setName, table.sets[set] == nil { throw reject(operation, "set \(set)", ENOENT) }
            }
            table.rules[chain, default: []].append(rule)
        case .addSet(_, let set):
            if let existing = table.sets[set.name], existing != set { throw reject(operation, "set \(set.name)", EEXIST) }
            table.add(set)
        case .deleteSet(_, let name):
            guard table.sets[name] != nil else { throw reject(operation, "set \(name)", ENOENT) }
            if checkReferences {
                for rules in table.rules.values where rules.contains(where: { $0.expressions.contains { $0.setName == name } }) {
                    throw reject(operation, "set \(name)", EBUSY)
                }
            }
            table.sets[name] = nil
            table.elements[name] = nil
        case .flushSet(_, let name):
            guard table.sets[name] != nil else { throw reject(operation, "set \(name)", ENOENT) }
            table.elements[name] = [:]
        case .addElements(_, let name, let elements):
            guard let set = table.sets[name] else { throw reject(operation, "set \(name)", ENOENT) }
            for element in elements {
                let subject = element.comment ?? "element \(element.key.map(\.description).joined(separator: " . "))"
                if let existing = table.elements[name]?[element.key], existing.data != element.data {
                    throw reject(operation, subject, EBUSY)
                }
                if set.isMap != (element.data != nil) { throw reject(operation, subject, EINVAL) }
                if case .verdict(let verdict)? = element.data, let chain = verdict.chain, table.chains[chain] == nil {
                    throw reject(operation, subject, ENOENT)
                }
                table.elements[name, default: [:]][element.key] = element
            }
        case .deleteElements(_, let name, let elements):
            guard table.sets[name] != nil else { throw reject(operation, "set \(name)", ENOENT) }
            for element in elements {
                guard table.elements[name]?.removeValue(forKey: element.key) != nil else {
                    throw reject(operation, element.comment ?? "element \(element.key.map(\.description).joined(separator: " . "))", ENOENT)
                }
            }
        }
    }
}
