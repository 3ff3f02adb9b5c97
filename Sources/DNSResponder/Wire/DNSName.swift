/// A domain name in uncompressed wire form (length-prefixed labels ending with the root).
///
/// Names compare and hash case-insensitively (RFC 4343) but keep their original spelling,
/// so a question can be echoed exactly as it was asked.
public struct DNSName: Hashable, Sendable, CustomStringConvertible {
    /// The wire form, e.g. `[3 f o o 3 c o m 0]`; always valid (label and name limits hold).
    public let wire: [UInt8]

    /// The root name `.`.
    public static let root = DNSName(uncheckedWire: [0])

    init(uncheckedWire wire: [UInt8]) { self.wire = wire }

    /// Builds a name from wire bytes after checking them.
    ///
    /// - Throws: ``DNSWireError`` when `wire` is not exactly one uncompressed name.
    public init(wire: [UInt8]) throws {
        var position = 0
        while true {
            guard position < wire.count else { throw DNSWireError.truncated(field: "name", offset: position) }
            let length = Int(wire[position])
            guard length <= DNSLimits.maxLabelLength else { throw DNSWireError.labelTooLong(offset: position, length: length) }
            position += 1 + length
            guard position <= DNSLimits.maxNameLength else { throw DNSWireError.nameTooLong(offset: 0) }
            if length == 0 { break }
        }
        guard position == wire.count else { throw DNSWireError.trailingBytes(offset: position, count: wire.count - position) }
        self.wire = wire
    }

    /// Parses presentation form: `bar-paris.default.svc.cluster.local` (the final dot is
    /// optional, `.` alone is the root). `\.` and `\DDD` escapes are understood.
    ///
    /// - Throws: ``DNSWireError/badNameText(_:reason:)`` naming the problem.
    public init(_ text: String) throws {
        if text == "." || text.isEmpty {
            self = .root
            return
        }
        if let wire = Self.plainWire(text) {
            self.wire = wire
            return
        }
        var wire: [UInt8] = []
        var label: [UInt8] = []
        var bytes = Array(text.utf8)[...]
        func finishLabel() throws {
            guard !label.isEmpty else { throw DNSWireError.badNameText(text, reason: "empty label") }
            guard label.count <= DNSLimits.maxLabelLength else {
                throw DNSWireError.badNameText(text, reason: "label of \(label.count) bytes (at most 63)")
            }
            wire.append(UInt8(label.count))
            wire.append(contentsOf: label)
            label.removeAll(keepingCapacity: true)
        }
        while let byte = bytes.popFirst() {
            switch byte {
            case UInt8(ascii: "."):
                try finishLabel()
            case UInt8(ascii: "\\"):
                guard let next = bytes.popFirst() else { throw DNSWireError.badNameText(text, reason: "dangling backslash") }
                if next >= UInt8(ascii: "0"), next <= UInt8(ascii: "9") {
                    guard bytes.count >= 2 else { throw DNSWireError.badNameText(text, reason: "\\DDD needs three digits") }
                    let digits = [next, bytes.removeFirst(), bytes.removeFirst()]
                    guard digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                        throw DNSWireError.badNameText(text, reason: "\\DDD needs three digits")
                    }
                    let value = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
                    guard value <= 255 else { throw DNSWireError.badNameText(text, reason: "\\DDD above 255") }
                    label.append(UInt8(value))
                } else {
                    label.append(next)
                }
            default:
                label.append(byte)
            }
        }
        if !label.isEmpty { try finishLabel() }
        wire.append(0)
        guard wire.count <= DNSLimits.maxNameLength else {
            throw DNSWireError.badNameText(text, reason: "longer than 255 bytes in wire form")
        }
        self.wire = wire
    }

    /// The wire form of a name without escapes and within the limits, in one pass over
    /// the text (most names: every service name at every table build); nil for anything
    /// else, which the general parser then handles or reports.
    private static func plainWire(_ text: String) -> [UInt8]? {
        var wire: [UInt8] = [0]
        wire.reserveCapacity(text.utf8.count + 2)
        var labelStart = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: "\\") { return nil }
            if byte == UInt8(ascii: ".") {
                let length = wire.count - labelStart - 1
                guard length > 0, length <= DNSLimits.maxLabelLength else { return nil }
                wire[labelStart] = UInt8(length)
                labelStart = wire.count
                wire.append(0)
            } else {
                wire.append(byte)
            }
        }
        let length = wire.count - labelStart - 1
        guard length <= DNSLimits.maxLabelLength else { return nil }
        if length > 0 {
            wire[labelStart] = UInt8(length)
            wire.append(0)
        }
        guard wire.count <= DNSLimits.maxNameLength else { return nil }
        return wire
    }

    /// The labels, leftmost first, root excluded.
    public var labels: [ArraySlice<UInt8>] {
        var result: [ArraySlice<UInt8>] = []
        var position = 0
        while position < wire.count, wire[position] != 0 {
            let length = Int(wire[position])
            result.append(wire[(position + 1)..<(position + 1 + length)])
            position += 1 + length
        }
        return result
    }

    /// The number of labels, root excluded (`cluster.local` has 2).
    public var labelCount: Int {
        var count = 0
        var position = 0
        while position < wire.count, wire[position] != 0 {
            position += Int(wire[position]) + 1
            count += 1
        }
        return count
    }

    /// The same name in lower case (ASCII only, as DNS defines it); the name itself (no
    /// copy) when it has no upper-case letter, the usual case for Kubernetes names.
    public func lowercased() -> DNSName {
        guard wire.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) else { return self }
        return DNSName(uncheckedWire: wire.map(DNSName.lowercase))
    }

    /// The name one label up, or `nil` for the root.
    public var parent: DNSName? {
        guard wire.count > 1 else { return nil }
        return DNSName(uncheckedWire: Array(wire[(Int(wire[0]) + 1)...]))
    }

    /// Whether this name equals `other` or lies below it.
    public func isSubdomain(of other: DNSName) -> Bool {
        var offset = 0
        while wire.count - offset > other.wire.count {
            offset += Int(wire[offset]) + 1
        }
        guard wire.count - offset == other.wire.count else { return false }
        for index in other.wire.indices where DNSName.lowercase(wire[offset + index]) != DNSName.lowercase(other.wire[index]) {
            return false
        }
        return true
    }

    /// `label` followed by this name: `_http` + `bar.svc` is `_http.bar.svc`.
    ///
    /// - Throws: ``DNSWireError/badNameText(_:reason:)`` when the label is empty or too long,
    ///   or the result exceeds 255 bytes.
    public func prepending(_ label: String) throws -> DNSName {
        let bytes = Array(label.utf8)
        guard !bytes.isEmpty, bytes.count <= DNSLimits.maxLabelLength, !bytes.contains(UInt8(ascii: ".")) else {
            throw DNSWireError.badNameText(label, reason: "a label must be 1–63 bytes without dots")
        }
        guard wire.count + bytes.count + 1 <= DNSLimits.maxNameLength else {
            throw DNSWireError.badNameText(label + "." + description, reason: "longer than 255 bytes in wire form")
        }
        return DNSName(uncheckedWire: [UInt8(bytes.count)] + bytes + wire)
    }

    public static func == (lhs: DNSName, rhs: DNSName) -> Bool {
        guard lhs.wire.count == rhs.wire.count else { return false }
        for index in lhs.wire.indices where lowercase(lhs.wire[index]) != lowercase(rhs.wire[index]) { return false }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        // One combine of a case-folded FNV digest: far cheaper than feeding bytes one by one.
        hasher.combine(wire.withUnsafeBytes { NameHash.hash($0, from: 0, count: $0.count) })
    }

    /// Presentation form with a trailing dot; bytes outside printable ASCII and `.`/`\`
    /// inside labels are escaped as `\DDD` / `\.`.
    public var description: String {
        if wire.count <= 1 { return "." }
        var text = ""
        for label in labels {
            for byte in label {
                switch byte {
                case UInt8(ascii: "."), UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: ";"):
                    text.append("\\")
                    text.append(Character(Unicode.Scalar(byte)))
                case 0x21...0x7E:
                    text.append(Character(Unicode.Scalar(byte)))
                default:
                    let digits = String(byte)
                    text.append("\\" + String(repeating: "0", count: 3 - digits.count) + digits)
                }
            }
            text.append(".")
        }
        return text
    }

    /// ASCII lower-casing of one byte; other bytes are unchanged.
    @inline(__always)
    static func lowercase(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
    }
}
