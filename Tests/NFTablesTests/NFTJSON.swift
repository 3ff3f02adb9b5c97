import Foundation
@testable import NFTables

/// Reads `nft -j list table` output into comparable strings, independently of the agent's
/// reader: "set: key : value # comment" per element, "chain: name hook prio" per chain.
struct NFTJSON {
    var elements: Set<String> = []
    var chains: Set<String> = []
    var sets: Set<String> = []
    var ruleComments: [String: [String]] = [:]

    init(_ text: String) throws {
        let root = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        for object in root?["nftables"] as? [[String: Any]] ?? [] {
            if let chain = object["chain"] as? [String: Any], let name = chain["name"] as? String {
                var line = name
                if let hook = chain["hook"] as? String { line += " \(chain["type"] ?? "?") \(hook) \(chain["prio"] ?? "?")" }
                chains.insert(line)
            }
            if let rule = object["rule"] as? [String: Any], let chain = rule["chain"] as? String {
                ruleComments[chain, default: []].append(rule["comment"] as? String ?? "")
            }
            for kind in ["set", "map"] {
                guard let set = object[kind] as? [String: Any], let name = set["name"] as? String else { continue }
                sets.insert("\(kind) \(name)")
                for item in set["elem"] as? [Any] ?? [] {
                    if let pair = item as? [Any], pair.count == 2 {
                        let (key, comment) = Self.key(pair[0])
                        elements.insert("\(name): \(key) : \(Self.text(pair[1]))\(comment)")
                    } else {
                        let (key, comment) = Self.key(item)
                        elements.insert("\(name): \(key)\(comment)")
                    }
                }
            }
        }
    }

    /// The same strings for the agent's desired table.
    static func expected(_ table: Table) -> (elements: Set<String>, chains: Set<String>) {
        var elements: Set<String> = []
        for (name, items) in table.elements {
            for element in items.values {
                var line = "\(name): " + element.key.map(\.description).joined(separator: " . ")
                if let data = element.data { line += " : \(data)" }
                if let comment = element.comment { line += " # \(comment)" }
                elements.insert(line)
            }
        }
        var chains: Set<String> = []
        for chain in table.chains.values {
            var line = chain.name
            if let base = chain.base { line += " \(base.kind.rawValue) \(base.hook.rawValue) \(base.priority)" }
            chains.insert(line)
        }
        return (elements, chains)
    }

    private static func key(_ item: Any) -> (String, String) {
        if let wrapper = item as? [String: Any], let elem = wrapper["elem"] as? [String: Any] {
            let comment = (elem["comment"] as? String).map { " # \($0)" } ?? ""
            return (text(elem["val"] ?? ""), comment)
        }
        return (text(item), "")
    }

    private static func text(_ value: Any) -> String {
        if let string = value as? String { return string }
        if let number = value as? NSNumber { return number.stringValue }
        if let dict = value as? [String: Any] {
            if let parts = dict["concat"] as? [Any] { return parts.map(text).joined(separator: " . ") }
            if let jump = dict["goto"] as? [String: Any] { return "goto \(jump["target"] ?? "")" }
            if let jump = dict["jump"] as? [String: Any] { return "jump \(jump["target"] ?? "")" }
            if let elem = dict["elem"] as? [String: Any] { return text(elem["val"] ?? "") }
        }
        return "\(value)"
    }
}
