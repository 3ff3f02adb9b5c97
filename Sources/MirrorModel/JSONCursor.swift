/// A strict, allocation-light reader of JSON tokens over UTF-8 bytes, for decoding one
/// known document shape without an intermediate tree.
///
/// It accepts only what RFC 8259 allows, and a little less: numbers read as integers must be
/// plain integers (no fraction or exponent), and object keys must not contain escapes. On
/// anything it does not accept it throws ``JSONCursor/Mismatch``, which carries no detail on
/// purpose: the caller then hands the document to a slower reader that explains problems.
///
/// The bytes are borrowed: a cursor must not outlive the buffer it was made from.
package struct JSONCursor {
    /// The document is not in the shape this reader accepts.
    package struct Mismatch: Error {
        package init() {}
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0

    package init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    /// Progress through one object or array: whether a comma is due before the next item.
    package struct Container {
        fileprivate var first = true
    }

    // MARK: structure

    /// Consumes `{`.
    package mutating func openObject() throws -> Container {
        try expect(UInt8(ascii: "{"))
        return Container()
    }

    /// Consumes `[`.
    package mutating func openArray() throws -> Container {
        try expect(UInt8(ascii: "["))
        return Container()
    }

    /// The next key of an open object and consumes its `:`; nil after the closing `}`.
    ///
    /// The key is returned as raw bytes (valid until the buffer goes), so matching it
    /// against the known field names allocates nothing.
    package mutating func nextKey(_ container: inout Container) throws -> UnsafeBufferPointer<UInt8>? {
        guard try nextItem(&container, closer: UInt8(ascii: "}")) else { return nil }
        try expect(UInt8(ascii: "\""))
        let start = index
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") { break }
            if byte == UInt8(ascii: "\\") || byte < 0x20 { throw Mismatch() }
            index += 1
        }
        guard index < bytes.count else { throw Mismatch() }
        let key = UnsafeBufferPointer(rebasing: bytes[start..<index])
        index += 1
        try expect(UInt8(ascii: ":"))
        return key
    }

    /// Whether an open array has another element (and consumes the `,` before it); false
    /// after the closing `]`.
    package mutating func nextElement(_ container: inout Container) throws -> Bool {
        try nextItem(&container, closer: UInt8(ascii: "]"))
    }

    private mutating func nextItem(_ container: inout Container, closer: UInt8) throws -> Bool {
        skipWhitespace()
        guard index < bytes.count else { throw Mismatch() }
        if bytes[index] == closer {
            index += 1
            return false
        }
        if container.first {
            container.first = false
        } else {
            guard bytes[index] == UInt8(ascii: ",") else { throw Mismatch() }
            index += 1
        }
        return true
    }

    /// Checks that only whitespace follows the document.
    package mutating func finish() throws {
        skipWhitespace()
        guard index == bytes.count else { throw Mismatch() }
    }

    // MARK: scalars

    /// Consumes `null` if it comes next.
    package mutating func skipNull() -> Bool {
        skipWhitespace()
        guard literal("null") else { return false }
        return true
    }

    package mutating func bool() throws -> Bool {
        skipWhitespace()
        if literal("true") { return true }
        if literal("false") { return false }
        throw Mismatch()
    }

    /// A JSON integer: `-?(0|[1-9][0-9]*)` within `Int`'s range, not followed by a fraction
    /// or an exponent.
    package mutating func int() throws -> Int {
        skipWhitespace()
        var negative = false
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        let start = index
        var value = 0
        while index < bytes.count, case let digit = bytes[index] &- UInt8(ascii: "0"), digit < 10 {
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = negative ? times.subtractingReportingOverflow(Int(digit)) : times.addingReportingOverflow(Int(digit))
            guard !o1, !o2 else { throw Mismatch() }
            value = sum
            index += 1
        }
        try checkIntegerEnd(start: start)
        return value
    }

    /// Refuses integers without digits, with a leading zero (`07`), or with a fraction or an
    /// exponent after the digits that started at `start`.
    private func checkIntegerEnd(start: Int) throws {
        let digits = index - start
        guard digits > 0, !(digits > 1 && bytes[start] == UInt8(ascii: "0")) else { throw Mismatch() }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") || bytes[index] | 0x20 == UInt8(ascii: "e") {
            throw Mismatch()
        }
    }

    /// A non-negative JSON integer within `UInt64`'s range (revisions): no sign, fraction or
    /// exponent.
    package mutating func uint64() throws -> UInt64 {
        skipWhitespace()
        let start = index
        var value: UInt64 = 0
        while index < bytes.count, case let digit = bytes[index] &- UInt8(ascii: "0"), digit < 10 {
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times.addingReportingOverflow(UInt64(digit))
            guard !o1, !o2 else { throw Mismatch() }
            value = sum
            index += 1
        }
        try checkIntegerEnd(start: start)
        return value
    }

    /// A JSON string, escapes decoded.
    package mutating func string() throws -> String {
        skipWhitespace()
        try expect(UInt8(ascii: "\""))
        let start = index
        var ascii = true
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let raw = UnsafeBufferPointer(rebasing: bytes[start..<index])
                // Bytes may come straight from a file: anything but ASCII is checked, never
                // repaired, so invalid UTF-8 reaches the reader that reports it.
                guard let text = ascii ? String(decoding: raw, as: UTF8.self) : String(validating: raw, as: UTF8.self) else { throw Mismatch() }
                index += 1
                return text
            }
            ascii = ascii && byte < 0x80
            if byte == UInt8(ascii: "\\") { return try escapedString(from: start) }
            if byte < 0x20 { throw Mismatch() }
            index += 1
        }
        throw Mismatch()
    }

    /// The rest of a string that contains escapes, from its first byte at `start`.
    private mutating func escapedString(from start: Int) throws -> String {
        var out = Array(bytes[start..<index])
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let text = String(validating: out, as: UTF8.self) else { throw Mismatch() }
                return text
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { throw Mismatch() }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"): out.append(contentsOf: try unicodeEscape())
                default: throw Mismatch()
                }
            case 0..<0x20:
                throw Mismatch()
            default:
                out.append(byte)
            }
        }
        throw Mismatch()
    }

    /// The UTF-8 of a `\uXXXX` escape (the `\u` already read), joining surrogate pairs; lone
    /// surrogates are refused.
    private mutating func unicodeEscape() throws -> [UInt8] {
        var scalar = try hex4()
        if (0xD800..<0xDC00).contains(scalar) {
            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else { throw Mismatch() }
            index += 2
            let low = try hex4()
            guard (0xDC00..<0xE000).contains(low) else { throw Mismatch() }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        }
        guard let unicode = Unicode.Scalar(scalar) else { throw Mismatch() }
        return Array(String(Character(unicode)).utf8)
    }

    private mutating func hex4() throws -> UInt32 {
        guard index + 4 <= bytes.count else { throw Mismatch() }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw Mismatch()
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    // MARK: bytes

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    private mutating func expect(_ byte: UInt8) throws {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == byte else { throw Mismatch() }
        index += 1
    }

    /// Consumes `word` when the bytes spell it and no letter or digit follows.
    private mutating func literal(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { return false }
        for i in 0..<count where bytes[index + i] != word.utf8Start[i] { return false }
        if index + count < bytes.count, Self.isWordByte(bytes[index + count]) { return false }
        index += count
        return true
    }

    private static func isWordByte(_ byte: UInt8) -> Bool {
        (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z") || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }
}

extension UnsafeBufferPointer<UInt8> {
    /// Whether these bytes spell `name` exactly (for matching object keys).
    package func spells(_ name: StaticString) -> Bool {
        guard count == name.utf8CodeUnitCount else { return false }
        for i in 0..<count where self[i] != name.utf8Start[i] { return false }
        return true
    }
}
