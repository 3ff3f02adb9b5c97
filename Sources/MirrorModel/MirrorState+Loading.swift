import Foundation

extension MirrorState {
    /// Parses and validates a state document (YAML or JSON).
    ///
    /// - Throws: ``DocumentSyntaxError`` when the text is not YAML/JSON at all, or
    ///   ``InvalidStateError`` listing every structural and semantic problem.
    public init(parsing text: String) throws {
        // Fast path for JSON (what big states and the feed use): a strict Codable decode and
        // the semantic checks. Only when that fails is the document walked field by field,
        // so that the error lists every problem with its path.
        if let state = Self.strictJSON(text) {
            let issues = state.validationIssues()
            guard issues.isEmpty else { throw InvalidStateError(issues: issues) }
            self = state
            return
        }
        let document = try DocumentValue.parse(text)
        var reader = StateReader()
        let state = reader.read(document)
        var validator = StateValidator()
        validator.validate(state, skipClusters: reader.brokenClusters, skipServices: reader.brokenServices, skipPolicies: reader.brokenPolicies)
        // A field the reader could not read holds a placeholder; drop what the validator
        // says about it, so each problem is reported once.
        // A field the reader could not read holds a placeholder; drop what the validator says
        // about it (and about its siblings in the same port or endpoint, which default from
        // it), so each problem is reported once.
        let unreadable = Set(reader.issues.map { issue in
            let object = issue.object.split(separator: " ").first ?? ""
            let field = issue.field.contains(".") ? String(issue.field[..<issue.field.lastIndex(of: ".")!]) : issue.field
            return "\(object) \(field)"
        })
        let semantic = validator.issues.filter { issue in
            let path = "\(issue.object.split(separator: " ").first ?? "") \(issue.field)"
            return !unreadable.contains { path == $0 || path.hasPrefix($0 + ".") }
        }
        let issues = (reader.issues + semantic).sortedByObject()
        guard issues.isEmpty else { throw InvalidStateError(issues: issues) }
        self = state
    }

    /// The state when `text` is JSON that decodes strictly (right types, no unknown
    /// fields); nil otherwise.
    ///
    /// ``StateJSONDecoder`` reads the usual documents in one pass over the bytes; what it
    /// declines (rare spellings such as `80.0` for a port, escaped keys) goes through
    /// `Codable`, so exactly the same documents are accepted as before it existed.
    private static func strictJSON(_ text: String) -> MirrorState? {
        guard looksLikeJSON(text.utf8) else { return nil }
        var text = text
        if let state = text.withUTF8({ StateJSONDecoder.decode($0) }) { return state }
        let decoder = JSONDecoder()
        decoder.userInfo[.strictMirrorState] = true
        return try? decoder.decode(MirrorState.self, from: Data(text.utf8))
    }

    /// Whether the first byte after leading whitespace opens a JSON object.
    private static func looksLikeJSON(_ bytes: some Sequence<UInt8>) -> Bool {
        bytes.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x09 && $0 != 0x0D }) == UInt8(ascii: "{")
    }

    /// Reads and validates a state file.
    public init(contentsOf path: String) throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw StateFileError(path: path, reason: (error as NSError).localizedDescription)
        }
        // A JSON state is decoded straight from the file's bytes: no second copy of a file
        // that may be tens of MiB.
        if Self.looksLikeJSON(data), let state = data.withUnsafeBytes({ StateJSONDecoder.decode($0.assumingMemoryBound(to: UInt8.self)) }) {
            try state.validate()
            self = state
            return
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw StateFileError(path: path, reason: "not UTF-8 text")
        }
        try self.init(parsing: text)
    }

    /// Every semantic problem in this state; empty when it is valid.
    ///
    /// States built in code or decoded from the feed's JSON go through this before use.
    public func validationIssues() -> [ValidationIssue] {
        var validator = StateValidator()
        validator.validate(self)
        return validator.issues
    }

    /// Throws ``InvalidStateError`` unless the state is valid.
    public func validate() throws {
        let issues = validationIssues()
        guard issues.isEmpty else { throw InvalidStateError(issues: issues) }
    }
}

/// A state file could not be read.
public struct StateFileError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String

    package init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
    public var description: String { "cannot read state file \(path): \(reason)" }
}

extension [ValidationIssue] {
    /// Orders issues as the objects appear in a file: state, clusters, services, then
    /// policies by index.
    /// The sort is stable, so each object's issues keep their order.
    func sortedByObject() -> [ValidationIssue] {
        func rank(_ issue: ValidationIssue) -> (Int, Int) {
            let head = issue.object.split(separator: " ").first.map(String.init) ?? ""
            let index = head.split(separator: "[").dropFirst().first.flatMap { Int($0.dropLast()) } ?? -1
            if head.hasPrefix("clusters[") { return (1, index) }
            if head.hasPrefix("services[") { return (2, index) }
            if head.hasPrefix("policies[") { return (3, index) }
            return (0, 0)
        }
        return enumerated().sorted { lhs, rhs in
            let (l, r) = (rank(lhs.element), rank(rhs.element))
            return l != r ? l < r : lhs.offset < rhs.offset
        }.map(\.element)
    }
}
