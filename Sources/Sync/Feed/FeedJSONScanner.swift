/// A strict, allocation-light reader for the JSON the feed server writes.
///
/// Every agent decodes every delta, so on a node the feed's cost is mostly decoding: through
/// `JSONDecoder` a one-service delta costs ~140 µs, most of it building Foundation's generic
/// value tree. This scanner reads the bytes in place instead. It handles only the plain
/// subset the server emits (no string escapes, integers without fraction or exponent, no
/// duplicate or unknown keys) and gives up with ``Unsupported`` on anything else, so that
/// the caller falls back to `JSONDecoder`: the fast path never accepts a line the decoder
/// would refuse, and errors are always reported by the decoder.
struct FeedJSONScanner {
    /// The input is outside the subset this scanner reads (or not JSON at all).
    struct Unsupported: Error {}

    private let bytes: UnsafeRawBufferPointer
    private var index = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    // MARK: structure

    /// Reads an object, calling `member` with each key; `member` must read the value.
    mutating func object(_ member: (inout FeedJSONScanner, String) throws -> Void) throws {
        try expect(UInt8(ascii: "{"))
        if try peek() == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            let key = try string()
            try expect(UInt8(ascii: ":"))
            try member(&self, key)
            switch try next() {
            case UInt8(ascii: ","): continue
            case UInt8(ascii: "}"): return
            default: throw Unsupported()
            }
        }
    }

    /// Reads an array, calling `element` once per element; `element` must read it.
    mutating func array(_ element: (inout FeedJSONScanner) throws -> Void) throws {
        try expect(UInt8(ascii: "["))
        if try peek() == UInt8(ascii: "]") {
            index += 1
            return
        }
        while true {
            try element(&self)
            switch try next() {
            case UInt8(ascii: ","): continue
            case UInt8(ascii: "]"): return
            default: throw Unsupported()
            }
        }
    }

    /// Checks that nothing but whitespace follows.
    mutating func end() throws {
        skipWhitespace()
        guard index == bytes.count else { throw Unsupported() }
    }

    // MARK: values

    /// A string without escapes or control characters, as valid UTF-8.
    mutating func string() throws -> String {
        try expect(UInt8(ascii: "\""))
        let start = index
        var ascii = true
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
                index += 1
                // ASCII is valid UTF-8 as is (the common case, and the cheap constructor);
                // anything else must be valid UTF-8, as JSONDecoder requires.
                if ascii { return String(decoding: raw, as: UTF8.self) }
                guard let text = String(validating: raw, as: UTF8.self) else { throw Unsupported() }
                return text
            }
            // Escapes and raw control characters go to the full decoder.
            guard byte != UInt8(ascii: "\\"), byte >= 0x20 else { throw Unsupported() }
            if byte >= 0x80 { ascii = false }
            index += 1
        }
        throw Unsupported()
    }

    /// A non-negative integer without sign, fraction or exponent.
    mutating func unsigned() throws -> UInt64 {
        skipWhitespace()
        let start = index
        var value: UInt64 = 0
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(UInt64(bytes[index] - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { throw Unsupported() }
            value = sum
            index += 1
        }
        let digits = index - start
        // No digits, a leading zero ("07"), or a fraction/exponent: not ours.
        guard digits > 0, !(digits > 1 && bytes[start] == UInt8(ascii: "0")) else { throw Unsupported() }
        if index < bytes.count {
            let byte = bytes[index]
            guard byte != UInt8(ascii: "."), byte != UInt8(ascii: "e"), byte != UInt8(ascii: "E") else { throw Unsupported() }
        }
        return value
    }

    /// A signed integer that fits `Int`.
    mutating func int() throws -> Int {
        skipWhitespace()
        var negative = false
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
            // "- 5" is not JSON: the digits must follow the sign at once.
            guard index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") else { throw Unsupported() }
        }
        let magnitude = try unsigned()
        guard magnitude <= UInt64(Int.max) else { throw Unsupported() }
        return negative ? -Int(magnitude) : Int(magnitude)
    }

    mutating func bool() throws -> Bool {
        if try literal("true") { return true }
        if try literal("false") { return false }
        throw Unsupported()
    }

    /// Consumes `null` if it is next: an optional field given as null reads as absent, as
    /// with `decodeIfPresent`.
    mutating func null() throws -> Bool {
        try literal("null")
    }

    /// An array of strings.
    mutating func strings() throws -> [String] {
        var values: [String] = []
        try array { values.append(try $0.string()) }
        return values
    }

    // MARK: bytes

    private mutating func literal(_ word: StaticString) throws -> Bool {
        skipWhitespace()
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { return false }
        let matches = word.withUTF8Buffer { expected in
            (0..<count).allSatisfy { bytes[index + $0] == expected[$0] }
        }
        guard matches else { return false }
        index += count
        // "nullx" or "true1" is not a literal followed by a delimiter.
        if index < bytes.count, (bytes[index] | 0x20) >= UInt8(ascii: "a"), (bytes[index] | 0x20) <= UInt8(ascii: "z") {
            throw Unsupported()
        }
        return true
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): index += 1
            default: return
            }
        }
    }

    private mutating func peek() throws -> UInt8 {
        skipWhitespace()
        guard index < bytes.count else { throw Unsupported() }
        return bytes[index]
    }

    private mutating func next() throws -> UInt8 {
        let byte = try peek()
        index += 1
        return byte
    }

    private mutating func expect(_ byte: UInt8) throws {
        guard try next() == byte else { throw Unsupported() }
    }
}
