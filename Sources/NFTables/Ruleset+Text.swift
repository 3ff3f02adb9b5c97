extension Table {
    /// The table in `nft -f` syntax: declarations and rules in the table block, then the
    /// elements as `add element` commands (so verdicts can name chains declared above).
    public var nftText: String {
        var lines = ["table \(id) {"]
        for name in sets.keys.sorted() {
            guard let set = sets[name] else { continue }
            lines.append("\t\(set.isMap ? "map" : "set") \(name) {")
            lines.append("\t\t" + set.declaration)
            lines.append("\t}")
        }
        for name in chains.keys.sorted() {
            guard let chain = chains[name] else { continue }
            lines.append("\tchain \(name) {")
            if let base = chain.base {
                lines.append("\t\ttype \(base.kind.rawValue) hook \(base.hook.rawValue) priority \(base.priority); policy accept;")
            }
            for rule in rules[name] ?? [] { lines.append("\t\t" + rule.text) }
            lines.append("\t}")
        }
        lines.append("}")
        for name in elements.keys.sorted() {
            guard let items = elements[name], !items.isEmpty else { continue }
            let sorted = items.values.map(\.description).sorted()
            var start = 0
            while start < sorted.count {
                let chunk = sorted[start ..< min(start + 1000, sorted.count)]
                lines.append("add element \(id) \(name) { " + chunk.joined(separator: ", ") + " }")
                start += chunk.count
            }
        }
        return lines.joined(separator: "\n")
    }
}

extension Ruleset {
    /// Every table in `nft -f` syntax, IPv4 first.
    public var nftText: String {
        tables.keys.sorted().compactMap { tables[$0]?.nftText }.joined(separator: "\n") + "\n"
    }
}
