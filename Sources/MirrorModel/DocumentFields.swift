/// The fields of one map, taken one by one so that the rest are the unknown ones.
struct DocumentFields {
    var remaining: [(key: String, value: DocumentValue)]

    init(_ pairs: [(key: String, value: DocumentValue)]) { remaining = pairs }

    mutating func take(_ key: String) -> DocumentValue? {
        guard let index = remaining.firstIndex(where: { $0.key == key }) else { return nil }
        return remaining.remove(at: index).value
    }
}

/// A reader of a ``DocumentValue`` tree into a model (a mirror state, an exports document).
///
/// The typed accessors record a ``ValidationIssue`` naming the object and field and return
/// nil instead of throwing, so a reader goes on and reports every problem of a file at once.
protocol DocumentReading {
    var issues: [ValidationIssue] { get set }
}

extension DocumentReading {
    mutating func reportUnknown(_ fields: DocumentFields, object: String, prefix: String) {
        for (key, _) in fields.remaining {
            issue(object, prefix + key, "unknown field (check the spelling)")
        }
    }

    mutating func issue(_ object: String, _ field: String, _ message: String) {
        issues.append(ValidationIssue(object: object, field: field, message: message))
    }

    mutating func missing(object: String, field: String, hint: String? = nil) {
        issue(object, field, "required field is missing" + (hint.map { " (\($0))" } ?? ""))
    }

    mutating func wrongType(_ value: DocumentValue, expected: String, object: String, field: String) {
        issue(object, field, "must be \(expected), got \(value.typeName)")
    }

    mutating func map(_ value: DocumentValue, object: String, field: String) -> [(key: String, value: DocumentValue)]? {
        if case .map(let pairs) = value { return pairs }
        wrongType(value, expected: "a map", object: object, field: field)
        return nil
    }

    /// A list; `null` (an empty YAML value) reads as the empty list.
    mutating func list(_ value: DocumentValue, object: String, field: String) -> [DocumentValue]? {
        switch value {
        case .list(let items): return items
        case .null: return []
        default:
            wrongType(value, expected: "a list", object: object, field: field)
            return nil
        }
    }

    mutating func string(_ value: DocumentValue, object: String, field: String) -> String? {
        if case .string(let text) = value { return text }
        wrongType(value, expected: "a string", object: object, field: field)
        return nil
    }

    mutating func optionalString(_ value: DocumentValue, object: String, field: String) -> String? {
        if case .null = value { return nil }
        return string(value, object: object, field: field)
    }

    /// The strings of a list; items of another type are reported and left out.
    mutating func strings(_ value: DocumentValue, object: String, field: String) -> [String] {
        guard let items = list(value, object: object, field: field) else { return [] }
        return items.enumerated().compactMap { string($1, object: object, field: "\(field)[\($0)]") }
    }

    mutating func int(_ value: DocumentValue, object: String, field: String) -> Int? {
        if case .int(let number) = value { return number }
        wrongType(value, expected: "an integer", object: object, field: field)
        return nil
    }

    mutating func bool(_ value: DocumentValue, object: String, field: String) -> Bool? {
        if case .bool(let flag) = value { return flag }
        wrongType(value, expected: "true or false", object: object, field: field)
        return nil
    }

    /// A port's protocol; an unknown name is reported and nil returned.
    mutating func l4Protocol(_ value: DocumentValue, object: String, field: String) -> L4Protocol? {
        guard let text = string(value, object: object, field: field) else { return nil }
        if let parsed = L4Protocol(rawValue: text) { return parsed }
        issue(object, field, "unknown protocol \"\(text)\"; expected TCP, UDP or SCTP")
        return nil
    }
}
