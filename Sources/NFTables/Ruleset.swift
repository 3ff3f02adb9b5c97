/// The contents of one nftables table: chains with their rules, sets/maps with their elements.
///
/// The same type describes the desired state (built by the caller) and the current state (read
/// back from the kernel or kept by a fake), so the two can be diffed.
public struct Table: Sendable, Equatable {
    public var id: TableID
    public var chains: [String: Chain] = [:]
    /// Rules per chain name, in order.
    public var rules: [String: [Rule]] = [:]
    public var sets: [String: NFTSet] = [:]
    /// Elements per set name, by key.
    public var elements: [String: ElementSet] = [:]

    public init(id: TableID) {
        self.id = id
    }

    /// Adds or replaces a chain (rules are kept).
    public mutating func add(_ chain: Chain, rules: [Rule]? = nil) {
        chains[chain.name] = chain
        if let rules { self.rules[chain.name] = rules } else if self.rules[chain.name] == nil { self.rules[chain.name] = [] }
    }

    /// Removes a chain and its rules.
    public mutating func removeChain(_ name: String) {
        chains[name] = nil
        rules[name] = nil
    }

    /// Adds a set or map (elements are kept).
    public mutating func add(_ set: NFTSet) {
        sets[set.name] = set
        if elements[set.name] == nil { elements[set.name] = [:] }
    }

    /// Adds or replaces an element of `set`.
    public mutating func add(_ element: Element, to set: String) {
        elements[set, default: [:]][element.key] = element
    }

    /// The number of elements in all sets.
    public var elementCount: Int { elements.values.reduce(0) { $0 + $1.count } }
}

/// Several tables: the agent owns two (`ip mirror-agent`, `ip6 mirror-agent`).
public struct Ruleset: Sendable, Equatable {
    public var tables: [TableID: Table]

    public init(tables: [Table] = []) {
        self.tables = Dictionary(tables.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
    }

    public subscript(id: TableID) -> Table? {
        get { tables[id] }
        set { tables[id] = newValue }
    }
}
