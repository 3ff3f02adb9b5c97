/// A set key or map value: up to four ``Value``s (a concatenation), packed inline in 40 bytes.
///
/// Keys and values of hundreds of thousands of elements are stored, hashed and compared on
/// every diff. A list holds at most one address (every set here does: `daddr . l4proto .
/// dport [. k]`, `addr . port`), so it packs into the address's two words plus one 32-bit
/// slot per other part and a small layout word — a third of the size of four `Value`s, which
/// makes dictionaries of elements much cheaper to fill and move.
public struct ValueList: Hashable, Sendable, RandomAccessCollection, ExpressibleByArrayLiteral, CustomStringConvertible {
    /// The most parts a concatenation may have here.
    public static let capacity = 4
    // The fields are internal (not private) for ValueList+Packing.swift alone.
    /// The address, if the list has one (as ``IPAddress`` stores it).
    var high: UInt64 = 0
    var low: UInt64 = 0
    /// The other parts: slot i is bits 32·(i % 2) of word i / 2 (zero where the address sits).
    var slots01: UInt64 = 0
    var slots23: UInt64 = 0
    /// Two bits of kind per position (0 proto, 1 port, 2 number, 3 address), the length in
    /// bits 8–10, the address family in bit 11 (set for IPv6) and bit 12 when there is an
    /// address. Unused bits stay zero, so
    /// the synthesized equality and hash are exact.
    var layout: UInt16 = 0

    /// - Precondition: at most ``capacity`` values and at most one address (a programming
    ///   error otherwise; the reader checks kernel data before building a list).
    public init(_ values: some Collection<Value>) {
        precondition(values.count <= Self.capacity, "a set key or map value has at most \(Self.capacity) parts")
        for (index, value) in values.enumerated() { set(value, at: index) }
        layout |= UInt16(values.count) << 8
    }

    /// The first `count` of the four values (the rest are ignored); builds a key without an
    /// intermediate array, for the reader's hot loop.
    init(count: Int, _ a: Value, _ b: Value, _ c: Value, _ d: Value) {
        precondition(count >= 0 && count <= Self.capacity, "a set key or map value has at most \(Self.capacity) parts")
        if count > 0 { set(a, at: 0) }
        if count > 1 { set(b, at: 1) }
        if count > 2 { set(c, at: 2) }
        if count > 3 { set(d, at: 3) }
        layout |= UInt16(count) << 8
    }

    public init(arrayLiteral elements: Value...) {
        self.init(elements)
    }

    private mutating func set(_ value: Value, at index: Int) {
        let kind: UInt16
        var slot: UInt32 = 0
        switch value {
        case .proto(let number): kind = 0; slot = UInt32(number)
        case .port(let port): kind = 1; slot = UInt32(port)
        case .number(let number): kind = 2; slot = number
        case .address(let address):
            precondition(!hasAddress, "a set key or map value holds at most one address")
            kind = 3
            high = address.high
            low = address.low
            if address.family == .ip6 { layout |= 1 << 11 }
            layout |= 1 << 12
        }
        layout |= kind << (2 * index)
        let shifted = UInt64(slot) << (32 * UInt64(index % 2))
        if index < 2 { slots01 |= shifted } else { slots23 |= shifted }
    }

    private var hasAddress: Bool { layout & (1 << 12) != 0 }

    public var startIndex: Int { 0 }
    public var endIndex: Int { Int((layout >> 8) & 7) }

    public subscript(position: Int) -> Value {
        precondition(position >= 0 && position < endIndex, "ValueList index out of range")
        let word = position < 2 ? slots01 : slots23
        let slot = UInt32(truncatingIfNeeded: word >> (32 * UInt64(position % 2)))
        switch (layout >> (2 * position)) & 3 {
        case 0: return .proto(UInt8(truncatingIfNeeded: slot))
        case 1: return .port(UInt16(truncatingIfNeeded: slot))
        case 2: return .number(slot)
        default: return .address(IPAddress(high: high, low: low, family: layout & (1 << 11) != 0 ? .ip6 : .ip))
        }
    }

    /// nft syntax: `10.0.0.1 . tcp . 80`.
    public var description: String { map(\.description).joined(separator: " . ") }
}
