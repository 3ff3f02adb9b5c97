extension Transaction {
    /// Elements this transaction adds to a counter set under a key it also deletes from a
    /// counter set of the same table (the same set with a new value, or another set: a
    /// service moving between the single-target map, the verdict map and the reject set), each
    /// with the address of the element it replaces.
    ///
    /// Without carrying, the replacement starts at zero and the service's packets and bytes
    /// seem to vanish whenever its number of targets changes. Only an element with the same
    /// comment (the same service, or the same policy backend) takes the old one's counts: a
    /// policy slot that now goes to another backend starts from zero.
    func replacements(countedIn desired: Ruleset) -> [(old: ElementAddress, new: ElementAddress)] {
        var deleted: [TableID: [ValueList: (set: String, comment: String?)]] = [:]
        for operation in operations {
            guard case .deleteElements(let id, let set, let elements) = operation,
                  desired[id]?.sets[set]?.counter == true else { continue }
            for element in elements { deleted[id, default: [:]][element.key] = (set, element.comment) }
        }
        guard !deleted.isEmpty else { return [] }
        var pairs: [(old: ElementAddress, new: ElementAddress)] = []
        for operation in operations {
            guard case .addElements(let id, let set, let elements) = operation, let removed = deleted[id],
                  desired[id]?.sets[set]?.counter == true else { continue }
            for element in elements {
                guard let old = removed[element.key], old.comment == element.comment else { continue }
                pairs.append((ElementAddress(table: id, set: old.set, key: element.key), ElementAddress(table: id, set: set, key: element.key)))
            }
        }
        return pairs
    }
}

extension Reconciler {
    /// The most replaced elements whose counters a full reconcile carries over (one netlink
    /// round trip each); beyond that, replaced elements start from zero.
    static let maximumCarriedCounters = 1024

    /// Reads the counters of the elements `transaction` replaces and has the new elements
    /// start from them. Called before the commit: packets counted between the read and the
    /// commit are lost (a few at most), never counted twice.
    func carryCounters(_ transaction: inout Transaction, desired: Ruleset) throws {
        let pairs = transaction.replacements(countedIn: desired)
        guard !pairs.isEmpty, pairs.count <= Self.maximumCarriedCounters else { return }
        let counters = try backend.readCounters(pairs.map(\.old))
        for (old, new) in pairs {
            if let counter = counters[old] { transaction.carriedCounters[new] = counter }
        }
    }
}
