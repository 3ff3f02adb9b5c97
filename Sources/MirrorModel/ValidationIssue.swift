/// One problem found in a mirror state, naming the object and the field concerned.
public struct ValidationIssue: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The object, as an operator finds it in the file: `services[3] default/bar-paris`.
    public var object: String
    /// The field inside that object, such as `ports[0].port`; empty for the object itself.
    public var field: String
    /// What is wrong and, where it helps, what was found.
    public var message: String

    public init(object: String, field: String, message: String) {
        self.object = object
        self.field = field
        self.message = message
    }

    public var description: String {
        field.isEmpty ? "\(object): \(message)" : "\(object): \(field): \(message)"
    }
}

/// A mirror state was rejected as a whole; ``issues`` lists every problem found.
public struct InvalidStateError: Error, Equatable, Sendable, CustomStringConvertible {
    public var issues: [ValidationIssue]

    public init(issues: [ValidationIssue]) {
        self.issues = issues
    }

    public var description: String {
        let noun = issues.count == 1 ? "problem" : "problems"
        return "invalid mirror state (\(issues.count) \(noun)):\n" + issues.map { "  - \($0)" }.joined(separator: "\n")
    }
}
