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
            let balanced = Self.balancedTargets(table)
            for set in MirrorTables.dnatMaps + [MirrorTables.chainMap, MirrorTables.rejectSet] {
                for element in (table.elements[set] ?? [:]).values {
                    lines.append(Line(service: element.comment ?? "(unlabelled)", slot: Self.slot(element.key),
                                      destination: Self.destination(element, set: set, table: table, balanced: balanced),
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

    /// The targets in `balance-targets` per port key (`vip . proto . port`), in bucket order.
    static func balancedTargets(_ table: Table) -> [ValueList: [String]] {
        var buckets: [ValueList: [(UInt32, String)]] = [:]
        for element in (table.elements[MirrorTables.balanceMap] ?? [:]).values {
            let key = element.key
            guard key.count == 4, case .number(let bucket) = key[3], let data = element.data else { continue }
            buckets[ValueList(key.prefix(3)), default: []].append((bucket, target(data, family: table.id.family)))
        }
        return buckets.mapValues { $0.sorted { $0.0 < $1.0 }.map(\.1) }
    }

    /// `10.99.1.2:4143` / `[fd00::2]:4143`
    static func target(_ data: ElementData, family: Family) -> String {
        guard case .values(let values) = data, values.count == 2 else { return data.description }
        return family == .ip ? "\(values[0]):\(values[1])" : "[\(values[0])]:\(values[1])"
    }

    static func destination(_ element: Element, set: String, table: Table, balanced: [ValueList: [String]]) -> String {
        switch element.data {
        case .values?:
            return element.data.map { target($0, family: table.id.family) } ?? "?"
        case .verdict(let verdict)?:
            guard let targets = balanced[element.key], !targets.isEmpty else { return verdict.description }
            return targets.joined(separator: ", ") + " (random)"
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
