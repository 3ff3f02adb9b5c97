import NFTables

/// Renders the agent's tables as read from the kernel, per service: each mirrored
/// `ClusterIP proto/port`, where it goes, and its packet/byte counters.
struct RulesetReport {
    struct Line: Comparable {
        var service: String
        var slot: String
        var destination: String
        var counter: Counter?

        static func < (lhs: Line, rhs: Line) -> Bool { (lhs.service, lhs.slot, lhs.destination) < (rhs.service, rhs.slot, rhs.destination) }
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
            lines += Self.policyLines(table, counters: counters)
        }
        lines.sort()
    }

    /// Per traffic-policy port (`policy-ports`), one line per backend: its slots out of N,
    /// where they go, and the packets counted for it (local: `policy-local`; a mirror: the
    /// sum over its slots in `policy-slots`).
    static func policyLines(_ table: Table, counters: [String: [ValueList: Counter]]) -> [Line] {
        var slots: [ValueList: [(index: UInt32, element: Element)]] = [:]
        for element in (table.elements[MirrorTables.policySlotsMap] ?? [:]).values {
            guard element.key.count == 4, case .number(let index) = element.key[3] else { continue }
            slots[ValueList(element.key.prefix(3)), default: []].append((index, element))
        }
        var lines: [Line] = []
        for port in (table.elements[MirrorTables.policyPortsMap] ?? [:]).values {
            guard case .verdict(let verdict)? = port.data, let chain = verdict.chain,
                  let count = Int(chain.dropFirst("policy-".count)) else { continue }
            let policy = port.comment ?? "(unlabelled policy)"
            let remote = (slots[port.key] ?? []).sorted { $0.index < $1.index }
            // Backends in slot order, each with its targets and summed counter.
            var order: [String] = []
            var byBackend: [String: (slots: Int, targets: [String], counter: Counter?)] = [:]
            for (_, element) in remote {
                let backend = element.comment.flatMap { PolicyPortRule.counterLabel($0)?.backend } ?? "?"
                if byBackend[backend] == nil { order.append(backend) }
                var entry = byBackend[backend] ?? (0, [], nil)
                entry.slots += 1
                let target = element.data.map { Self.target($0, family: table.id.family) } ?? "?"
                if !entry.targets.contains(target) { entry.targets.append(target) }
                if let counter = counters[MirrorTables.policySlotsMap]?[element.key] {
                    var sum = entry.counter ?? Counter(packets: 0, bytes: 0)
                    sum.add(counter)
                    entry.counter = sum
                }
                byBackend[backend] = entry
            }
            let slot = Self.slot(port.key)
            let local = count - remote.count
            lines.append(Line(service: policy, slot: slot, destination: "local \(local)/\(count) (falls through to kube-proxy)",
                              counter: counters[MirrorTables.policyLocalSet]?[port.key]))
            for backend in order {
                guard let entry = byBackend[backend] else { continue }
                lines.append(Line(service: policy, slot: slot,
                                  destination: "\(backend) \(entry.slots)/\(count) -> \(entry.targets.joined(separator: ", "))",
                                  counter: entry.counter))
            }
        }
        return lines
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
