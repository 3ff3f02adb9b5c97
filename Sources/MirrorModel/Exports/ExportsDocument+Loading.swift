import Foundation

extension ExportsDocument {
    /// Parses and validates an exports document (YAML or JSON); addresses come out in
    /// canonical text.
    ///
    /// - Parameter gatewayPorts: the range every gateway port must be in.
    /// - Throws: ``DocumentSyntaxError`` when the text is not YAML/JSON at all, or
    ///   ``InvalidExportsError`` listing every structural and semantic problem.
    public static func parse(_ text: String, gatewayPorts: GatewayPortRange = .default) throws -> ExportsDocument {
        if let valid = decodeValidJSON(Data(text.utf8), gatewayPorts: gatewayPorts) { return valid }
        var reader = ExportsReader()
        let document = reader.read(try DocumentValue.parse(text))
        var validator = ExportsValidator(gatewayPorts: gatewayPorts)
        validator.validate(document, skipping: reader.unreadable)
        let issues = (reader.issues + validator.issues).inExportsDocumentOrder()
        guard issues.isEmpty else { throw InvalidExportsError(issues: issues) }
        return document.canonicalized()
    }

    /// A valid JSON document (the common large case, written by a program) decoded straight
    /// into the model, several times faster than through the reader; nil for anything else
    /// (YAML, or any problem), which the reader then reports with every path.
    static func decodeValidJSON(_ data: Data, gatewayPorts: GatewayPortRange) -> ExportsDocument? {
        guard data.first(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\t") && $0 != UInt8(ascii: "\r") })
            == UInt8(ascii: "{") else { return nil }
        guard let document = data.withUnsafeBytes({ raw in StateJSONDecoder.decodeExports(raw.bindMemory(to: UInt8.self)) }) else { return nil }
        return try? document.validated(gatewayPorts: gatewayPorts)
    }

    /// Reads, parses and validates an exports file.
    ///
    /// - Throws: ``ExportsFileError`` when the file cannot be read, otherwise as ``parse(_:gatewayPorts:)``.
    public static func load(path: String, gatewayPorts: GatewayPortRange = .default) throws -> ExportsDocument {
        try parse(contentsOf: readFile(path), path: path, gatewayPorts: gatewayPorts)
    }

    /// The bytes of the file at `path`.
    static func readFile(_ path: String) throws(ExportsFileError) -> Data {
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ExportsFileError(path: path, reason: (error as NSError).localizedDescription)
        }
    }

    /// Parses and validates the bytes read from the file at `path` (named in errors).
    static func parse(contentsOf data: Data, path: String, gatewayPorts: GatewayPortRange) throws -> ExportsDocument {
        if let valid = decodeValidJSON(data, gatewayPorts: gatewayPorts) { return valid }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ExportsFileError(path: path, reason: "not UTF-8 text")
        }
        return try parse(text, gatewayPorts: gatewayPorts)
    }

    /// This document, checked and with addresses in canonical text: for documents that were
    /// decoded elsewhere (JSON from a feed) and so never went through ``parse(_:gatewayPorts:)``.
    ///
    /// - Throws: ``InvalidExportsError`` listing every problem.
    public func validated(gatewayPorts: GatewayPortRange = .default) throws -> ExportsDocument {
        var validator = ExportsValidator(gatewayPorts: gatewayPorts)
        validator.validate(self)
        guard validator.issues.isEmpty else { throw InvalidExportsError(issues: validator.issues) }
        return canonicalized()
    }

    /// The same document with every address in canonical text, so that two spellings of one
    /// address (`fd00:0::10`, `fd00::10`) are one value and a re-read file that only respells
    /// an address is no change. Only called on valid documents: every address parses.
    private func canonicalized() -> ExportsDocument {
        func canonical(_ text: String) -> String { IPAddressText.canonical(text)?.text ?? text }
        var copy = self
        copy.gatewayAddresses = gatewayAddresses.map(canonical)
        for index in copy.exports.indices {
            for position in copy.exports[index].endpoints.indices {
                copy.exports[index].endpoints[position].ip = canonical(copy.exports[index].endpoints[position].ip)
            }
        }
        return copy
    }
}

/// An exports document was rejected as a whole; ``issues`` lists every problem found.
public struct InvalidExportsError: Error, Equatable, Sendable, CustomStringConvertible {
    public var issues: [ValidationIssue]

    public init(issues: [ValidationIssue]) {
        self.issues = issues
    }

    public var description: String {
        let noun = issues.count == 1 ? "problem" : "problems"
        return "invalid exports document (\(issues.count) \(noun)):\n" + issues.map { "  - \($0)" }.joined(separator: "\n")
    }
}

/// An exports file could not be read.
public struct ExportsFileError: Error, Equatable, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String

    public var description: String { "cannot read exports file \(path): \(reason)" }
}

extension [ValidationIssue] {
    /// Orders issues as the objects appear in a document: its own fields, then each export by
    /// index. The sort is stable, so each object's issues keep their order.
    fileprivate func inExportsDocumentOrder() -> [ValidationIssue] {
        func exportIndex(_ issue: ValidationIssue) -> Int {
            let head = "exports["
            guard issue.object.hasPrefix(head) else { return -1 }
            return Int(issue.object.dropFirst(head.count).prefix { $0 != "]" }) ?? -1
        }
        return enumerated()
            .sorted { (exportIndex($0.element), $0.offset) < (exportIndex($1.element), $1.offset) }
            .map(\.element)
    }
}
