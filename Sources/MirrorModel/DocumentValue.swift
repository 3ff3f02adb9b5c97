import Foundation
import Yams

/// A parsed YAML or JSON document, before it is read into a ``MirrorState``.
///
/// State files are read through this tree rather than `Codable` so that every problem in a
/// file (unknown fields, wrong types) is reported at once with its path, instead of the
/// first one only.
enum DocumentValue: Sendable {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case null
    case list([DocumentValue])
    /// Keys in document order (YAML) or sorted (JSON).
    case map([(key: String, value: DocumentValue)])

    /// A short name of the value's type for error messages.
    var typeName: String {
        switch self {
        case .string: "a string"
        case .int: "an integer"
        case .double: "a number"
        case .bool: "a boolean"
        case .null: "null"
        case .list: "a list"
        case .map: "a map"
        }
    }
}

/// Why a document could not be parsed at all (before any field is looked at).
public struct DocumentSyntaxError: Error, CustomStringConvertible {
    public var description: String
}

extension DocumentValue {
    /// Parses YAML or JSON text. JSON goes through Foundation's decoder, which is much faster
    /// than a YAML parser on the large states a benchmark or a big cluster produces.
    static func parse(_ text: String) throws -> DocumentValue {
        let trimmed = text.drop { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }
        if trimmed.first == "{" {
            let object: Any
            do {
                object = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
            } catch {
                throw DocumentSyntaxError(description: "invalid JSON: \((error as NSError).localizedDescription)")
            }
            return DocumentValue(json: object)
        }
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw DocumentSyntaxError(description: "invalid YAML: \(error)")
        }
        guard let node else { return .map([]) }
        var budget = maximumNodes
        return try DocumentValue(yaml: node, depth: 0, budget: &budget)
    }

    /// Converts Foundation's JSON objects. Booleans and numbers both arrive as `NSNumber`;
    /// the Objective-C type code tells them apart (`c` for JSON true/false).
    private init(json object: Any) {
        // Containers first: casting a Swift dictionary to NSNumber would bridge it to
        // NSDictionary, which made big states several times slower to read.
        switch object {
        case let dictionary as [String: Any]:
            self = .map(dictionary.keys.sorted().map { ($0, DocumentValue(json: dictionary[$0] ?? NSNull())) })
        case let array as [Any]:
            self = .list(array.map(DocumentValue.init(json:)))
        case let text as String:
            self = .string(text)
        case let number as NSNumber:
            switch String(cString: number.objCType) {
            case "c", "B": self = .bool(number.boolValue)
            case "d", "f": self = .double(number.doubleValue)
            default: self = .int(number.intValue)
            }
        default:
            self = .null
        }
    }

    /// Far above any real state (a state file of 100k services is about 2M nodes; larger states belong in JSON), far below what would
    /// exhaust memory.
    static let maximumNodes = 3_000_000

    private init(yaml node: Node, depth: Int, budget: inout Int) throws {
        // YAML aliases share nodes; expanding them could otherwise grow without bound
        // ("billion laughs").
        budget -= 1
        guard budget >= 0 else { throw DocumentSyntaxError(description: "document has more than \(Self.maximumNodes) nodes (alias expansion?)") }
        guard depth < 64 else { throw DocumentSyntaxError(description: "document nested deeper than 64 levels") }
        switch node {
        case .scalar(let scalar):
            guard scalar.style == .plain || scalar.style == .any else {
                self = .string(scalar.string)
                return
            }
            switch Tag.Name(rawValue: node.tag.rawValue) {
            case .null: self = .null
            case .bool: self = node.bool.map(DocumentValue.bool) ?? .string(scalar.string)
            case .int: self = node.int.map(DocumentValue.int) ?? .string(scalar.string)
            case .float: self = node.float.map { .double(Double($0)) } ?? .string(scalar.string)
            default: self = .string(scalar.string)
            }
        case .sequence(let sequence):
            self = .list(try sequence.map { try DocumentValue(yaml: $0, depth: depth + 1, budget: &budget) })
        case .mapping(let mapping):
            self = .map(try mapping.map { pair in
                let key = pair.key.scalar?.string ?? "\(pair.key)"
                return (key, try DocumentValue(yaml: pair.value, depth: depth + 1, budget: &budget))
            })
        case .alias(let alias):
            throw DocumentSyntaxError(description: "unresolved YAML alias \(alias)")
        }
    }
}
