import Foundation
import MirrorModel

/// How `feed --exports kubernetes` runs: what this cluster calls itself, where its gateways
/// listen, which Services it exports, and where and from which range it allocates gateway
/// ports.
public struct KubernetesExportsOptions: Sendable {
    /// This cluster's name (a DNS label), as the importing clusters' Links name it.
    public var cluster: String
    /// The addresses the gateways listen on (IPs), published in the exports document.
    public var gatewayAddresses: [String]
    /// The namespace of the allocation record (the feed's own).
    public var namespace: String
    public var recordName = GatewayPortRecord.defaultName
    public var range = GatewayPortRange.default
    /// The exported Services (gateway mode): Linkerd's `mirror.linkerd.io/exported=true`.
    public var selector = MirrorTranslator.defaultSelector
    /// Changes arriving within this window are handled together.
    public var coalescing: Duration = .milliseconds(50)
    /// How often a full allocation pass runs anyway: the ports of Services deleted while not
    /// exported (no event reaches the exported Services' watch) are freed then.
    public var resyncInterval: Duration = .seconds(60)
    /// Waits between failed allocation passes (the API unreachable, the record refused).
    public var retryBackoff = RetryBackoff(initial: .milliseconds(500), maximum: .seconds(30))
    /// Annotation writes per second, and the burst allowed.
    public var writeQPS: Double = 50
    public var writeBurst = 100
    /// The informers' settings (watch timeouts, backoff); namespace and selector are set here.
    public var informer = InformerOptions()

    public init(cluster: String, gatewayAddresses: [String], namespace: String) {
        self.cluster = cluster
        self.gatewayAddresses = gatewayAddresses
        self.namespace = namespace
    }

    /// What is wrong with these options, one line each; empty when they can run.
    public var problems: [String] {
        var problems: [String] = []
        if !DNSLabel.isValid(cluster) {
            problems.append("cluster name \"\(cluster)\" is not a DNS label (lowercase letters, digits and '-', at most 63)")
        }
        if gatewayAddresses.isEmpty { problems.append("at least one gateway address is needed") }
        for address in gatewayAddresses where IPAddressText.canonical(address) == nil {
            problems.append("gateway address \"\(address)\" is not an IP address")
        }
        do {
            if try selector.queryText() == nil { problems.append("the export selector is empty: it would export every Service") }
        } catch {
            problems.append("export selector: \(error)")
        }
        if !DNSLabel.isValid(namespace) { problems.append("namespace \"\(namespace)\" is not a DNS label") }
        return problems
    }
}

extension LabelSelector {
    /// Parses the `labelSelector` text form (`a=b,c!=d,e in (f,g),h notin (i),j,!k`), as
    /// `kubectl -l` takes it, into a selector whose ``queryText()`` the API reads the same way.
    public init(parsing text: String) throws {
        var labels: [String: String] = [:]
        var expressions: [LabelSelectorRequirement] = []
        var terms: [String] = []
        var depth = 0
        var current = ""
        for character in text {
            if character == "(" { depth += 1 }
            if character == ")" { depth -= 1 }
            if character == ",", depth == 0 {
                terms.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        terms.append(current)
        for rawTerm in terms {
            let term = rawTerm.trimmingCharacters(in: .whitespaces)
            guard !term.isEmpty else { throw LabelSelectorError("empty term in \"\(text)\"") }
            if let open = term.firstIndex(of: "("), term.hasSuffix(")") {
                let head = term[..<open].split(separator: " ", omittingEmptySubsequences: true)
                guard head.count == 2, head[1] == "in" || head[1] == "notin" else {
                    throw LabelSelectorError("\"\(term)\" is not KEY in (VALUES) or KEY notin (VALUES)")
                }
                let values = term[term.index(after: open)..<term.index(before: term.endIndex)]
                    .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                try Self.checkKey(String(head[0]), in: term)
                try values.forEach { try Self.checkValue($0, in: term) }
                expressions.append(LabelSelectorRequirement(key: String(head[0]), operator: head[1] == "in" ? "In" : "NotIn",
                                                            values: values))
            } else if let range = term.range(of: "!=") {
                let key = term[..<range.lowerBound].trimmingCharacters(in: .whitespaces)
                let value = term[range.upperBound...].trimmingCharacters(in: .whitespaces)
                try Self.checkKey(key, in: term)
                try Self.checkValue(value, in: term)
                expressions.append(LabelSelectorRequirement(key: key, operator: "NotIn", values: [value]))
            } else if let range = term.range(of: "==") ?? term.range(of: "=") {
                let key = term[..<range.lowerBound].trimmingCharacters(in: .whitespaces)
                let value = term[range.upperBound...].trimmingCharacters(in: .whitespaces)
                try Self.checkKey(key, in: term)
                try Self.checkValue(value, in: term)
                if let other = labels[key], other != value { throw LabelSelectorError("\(key) is given two values") }
                labels[key] = value
            } else if term.hasPrefix("!") {
                let key = term.dropFirst().trimmingCharacters(in: .whitespaces)
                try Self.checkKey(key, in: term)
                expressions.append(LabelSelectorRequirement(key: key, operator: "DoesNotExist"))
            } else {
                try Self.checkKey(term, in: term)
                expressions.append(LabelSelectorRequirement(key: term, operator: "Exists"))
            }
        }
        self.init(matchLabels: labels.isEmpty ? nil : labels, matchExpressions: expressions.isEmpty ? nil : expressions)
    }

    /// A label key: an optional DNS-subdomain prefix and `/`, then a name of letters, digits,
    /// `-`, `_`, `.` (at most 63, alphanumeric at both ends).
    private static func checkKey(_ key: String, in term: String) throws {
        let name = key.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).last.map(String.init) ?? key
        let prefix = key.count > name.count ? String(key.dropLast(name.count + 1)) : nil
        guard isLabelValue(name), !name.isEmpty,
              prefix.map({ !$0.isEmpty && $0.count <= 253 && $0.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "-" || $0 == "." } }) ?? true else {
            throw LabelSelectorError("\"\(key)\" in \"\(term)\" is not a label key")
        }
    }

    private static func checkValue(_ value: String, in term: String) throws {
        guard isLabelValue(value) else { throw LabelSelectorError("\"\(value)\" in \"\(term)\" is not a label value") }
    }

    private static func isLabelValue(_ text: String) -> Bool {
        guard text.count <= 63 else { return false }
        guard let first = text.first, let last = text.last else { return true }
        let allowed = text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
        return allowed && first.isASCII && (first.isLetter || first.isNumber) && (last.isLetter || last.isNumber)
    }
}
