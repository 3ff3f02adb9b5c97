/// A named set or map, as nft names it (`set`/`map` in a table).
public struct NFTSet: Hashable, Sendable {
    public var name: String
    /// The key's parts (a concatenation when more than one).
    public var keyTypes: [DataType]
    /// The mapped value's parts for a map (`[.verdict]` for a verdict map); nil for a set.
    public var dataTypes: [DataType]?
    /// Give every element its own packet/byte counter.
    public var counter: Bool

    public init(name: String, keyTypes: [DataType], dataTypes: [DataType]? = nil, counter: Bool = false) {
        self.name = name
        self.keyTypes = keyTypes
        self.dataTypes = dataTypes
        self.counter = counter
    }

    public var isMap: Bool { dataTypes != nil }
    public var isVerdictMap: Bool { dataTypes == [.verdict] }

    /// nft syntax for the declaration (without elements).
    var declaration: String {
        if keyTypes.contains(.integer) || dataTypes?.contains(.integer) == true {
            var type = keyTypes.map { $0.typeofExpression }.joined(separator: " . ")
            if let dataTypes { type += " : " + dataTypes.map { $0.typeofExpression }.joined(separator: " . ") }
            return "typeof \(type)" + (counter ? "\n\t\tcounter" : "")
        }
        var type = keyTypes.map(\.description).joined(separator: " . ")
        if let dataTypes { type += " : " + dataTypes.map(\.description).joined(separator: " . ") }
        return "type \(type)" + (counter ? "\n\t\tcounter" : "")
    }
}

/// A chain. Base chains are attached to a netfilter hook.
public struct Chain: Hashable, Sendable {
    public var name: String
    public var base: BaseChain?

    public init(name: String, base: BaseChain? = nil) {
        self.name = name
        self.base = base
    }
}

/// The hook, type and priority of a base chain (policy is always accept).
public struct BaseChain: Hashable, Sendable {
    public enum Kind: String, Sendable { case filter, nat }
    public enum Hook: String, Sendable {
        case prerouting, input, forward, output, postrouting

        /// The `NF_INET_*` hook number.
        var number: UInt32 {
            switch self {
            case .prerouting: 0
            case .input: 1
            case .forward: 2
            case .output: 3
            case .postrouting: 4
            }
        }

        init?(number: UInt32) {
            switch number {
            case 0: self = .prerouting
            case 1: self = .input
            case 2: self = .forward
            case 3: self = .output
            case 4: self = .postrouting
            default: return nil
            }
        }
    }

    public var kind: Kind
    public var hook: Hook
    public var priority: Int32

    public init(kind: Kind, hook: Hook, priority: Int32) {
        self.kind = kind
        self.hook = hook
        self.priority = priority
    }
}
