import NFTables

/// Renders the agent's tables as read from the kernel, per service: each mirrored
/// `ClusterIP proto/port`, where it goes, and its packet/byte counters.
struct RulesetReport {
    struct Line: Comparable {
        var service: String
        var slot: String
        var destination: String
        var counter: Counter?

        static func < (lhs: Line, rhs: Line) -> Bool { (lhs.service, lhs.slot) < (rhs.service, rhs.slot) }
    }

    private(set) var lines: [Line] = []

    init(_ snapshot: KernelSnapshot) {
        for (id, table) in snapshot.ruleset.tables {
            let counters = snapshot.counters[id] ?? [:]
            for set in MirrorTables.dnatMaps + [MirrorTables.chainMap, MirrorTables.rejectSet] {
                for element in (table.elements[set] ?? [:]).values {
                    lines.append(Line(service: element.comment ?? "(unlabelled)", slot: Self.slot(element.key),
                                      destination: Self.destination(element, set: set, table: table),
                                      counter: counters[set]?[element.key]))
                }
            }
        }
        lines.sort()
    }

    /// `10.112.0.10 tcp/80`
    static func slot(_ key: ValueList) -> String {
        guard key.count == 3 else { return key.map(\.description).joined(separator: " . ") }
        return "\(key[0]) \(key[1])/\(key[2])"
    }

    static func destination(_ element: Element, set: String, table: Table) -> String {
        switch element.data {
        case .values(let values)? where values.count == 2:
            return table.id.family == .ip ? "\(values[0]):\(values[1])" : "[\(values[0])]:\(values[1])"
        case .verdict(let verdict)?:
            guard let chain = verdict.chain else { return verdict.description }
            // Rule comments read "<service> i/N <target> #fingerprint".
            let targets = (table.rules[chain] ?? []).compactMap { rule -> String? in
                let words = rule.storedComment.split(separator: " ")
                return words.count >= 3 ? String(words[words.count - 2]) : nil
            }
            return targets.isEmpty ? "chain \(chain)" : targets.joined(separator: ", ") + " (random)"
        default:
            return set == MirrorTables.rejectSet ? "reject (no live target)" : "?"
        }
    }

    /// The report as text, one block per service.
    var text: String {
        guard !lines.isEmpty else { return "no mirrored services programmed\n" }
        var output = ""
        var current: String?
        for line in lines {
            if line.service != current {
                output += line.service + "\n"
                current = line.service
            }
            let counts = line.counter.map { "packets \($0.packets) bytes \($0.bytes)" } ?? ""
            output += "  \(line.slot) -> \(line.destination)  \(counts)\n"
        }
        return output
    }
}
