/// A metav1.LabelSelector, as in a Link's selectors.
///
/// The controller both matches labels with it (objects it already holds) and sends it to the
/// API as a `labelSelector` parameter (lists and watches), so the two must agree: both are
/// derived from the same requirements here.
public struct LabelSelector: Codable, Sendable, Hashable {
    public var matchLabels: [String: String]?
    public var matchExpressions: [LabelSelectorRequirement]?

    public init(matchLabels: [String: String]? = nil, matchExpressions: [LabelSelectorRequirement]? = nil) {
        self.matchLabels = matchLabels
        self.matchExpressions = matchExpressions
    }

    /// An empty selector matches everything (a nil one, in a spec, nothing: the caller decides).
    public var isEmpty: Bool { (matchLabels ?? [:]).isEmpty && (matchExpressions ?? []).isEmpty }

    public func matches(_ labels: [String: String]?) throws -> Bool {
        let labels = labels ?? [:]
        for (key, value) in matchLabels ?? [:] where labels[key] != value { return false }
        for requirement in matchExpressions ?? [] where try !requirement.matches(labels) { return false }
        return true
    }

    /// The `labelSelector` query text (`a=b,c in (d,e),!f`); nil for an empty selector.
    /// Throws for an unknown operator or a set operator without values, as the API would.
    public func queryText() throws -> String? {
        var terms = (matchLabels ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        for requirement in matchExpressions ?? [] { terms.append(try requirement.queryTerm()) }
        return terms.isEmpty ? nil : terms.joined(separator: ",")
    }
}

public struct LabelSelectorRequirement: Codable, Sendable, Hashable {
    public var key: String
    /// In, NotIn, Exists or DoesNotExist.
    public var `operator`: String
    public var values: [String]?

    public init(key: String, operator: String, values: [String]? = nil) {
        self.key = key
        self.operator = `operator`
        self.values = values
    }

    func matches(_ labels: [String: String]) throws -> Bool {
        try validate()
        switch `operator` {
        case "In": return labels[key].map { (values ?? []).contains($0) } ?? false
        case "NotIn": return labels[key].map { !(values ?? []).contains($0) } ?? true
        case "Exists": return labels[key] != nil
        default: return labels[key] == nil
        }
    }

    func queryTerm() throws -> String {
        try validate()
        switch `operator` {
        case "In": return "\(key) in (\((values ?? []).sorted().joined(separator: ",")))"
        case "NotIn": return "\(key) notin (\((values ?? []).sorted().joined(separator: ",")))"
        case "Exists": return key
        default: return "!\(key)"
        }
    }

    private func validate() throws {
        switch `operator` {
        case "In", "NotIn":
            if (values ?? []).isEmpty { throw LabelSelectorError("\(key): operator \(`operator`) needs values") }
        case "Exists", "DoesNotExist":
            if !(values ?? []).isEmpty { throw LabelSelectorError("\(key): operator \(`operator`) takes no values") }
        default:
            throw LabelSelectorError("\(key): unknown operator \"\(`operator`)\" (In, NotIn, Exists, DoesNotExist)")
        }
    }
}

public struct LabelSelectorError: Error, CustomStringConvertible, Equatable {
    public var description: String
    init(_ description: String) { self.description = description }
}
