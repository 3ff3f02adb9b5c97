/// A set key or map value: up to four ``Value``s (a concatenation), stored inline.
///
/// Keys of hundreds of thousands of elements are hashed and compared on every diff; keeping
/// them out of the heap (unlike `[Value]`) saves an allocation per key and makes hashing cheap.
public struct ValueList: Hashable, Sendable, RandomAccessCollection, ExpressibleByArrayLiteral, CustomStringConvertible {
    /// The most parts a concatenation may have here.
    public static let capacity = 4
    private var first: Value
    private var second: Value
    private var third: Value
    private var fourth: Value
    private let length: UInt8

    /// - Precondition: at most ``capacity`` values (a programming error otherwise).
    public init(_ values: some Collection<Value>) {
        precondition(values.count <= Self.capacity, "a set key or map value has at most \(Self.capacity) parts")
        let filler = Value.proto(0)
        var iterator = values.makeIterator()
        first = iterator.next() ?? filler
        second = iterator.next() ?? filler
        third = iterator.next() ?? filler
        fourth = iterator.next() ?? filler
        length = UInt8(values.count)
    }

    /// The first `count` of the four values (the rest are ignored); builds a key without an
    /// intermediate array, for the reader's hot loop.
    init(count: Int, _ a: Value, _ b: Value, _ c: Value, _ d: Value) {
        precondition(count >= 0 && count <= Self.capacity, "a set key or map value has at most \(Self.capacity) parts")
        let filler = Value.proto(0)
        first = count > 0 ? a : filler
        second = count > 1 ? b : filler
        third = count > 2 ? c : filler
        fourth = count > 3 ? d : filler
        length = UInt8(count)
    }

    public init(arrayLiteral elements: Value...) {
        self.init(elements)
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { Int(length) }

    public subscript(position: Int) -> Value {
        precondition(position >= 0 && position < Int(length), "ValueList index out of range")
        switch position {
        case 0: return first
        case 1: return second
        case 2: return third
        default: return fourth
        }
    }

    public static func == (lhs: ValueList, rhs: ValueList) -> Bool {
        lhs.length == rhs.length && lhs.first == rhs.first && lhs.second == rhs.second && lhs.third == rhs.third && lhs.fourth == rhs.fourth
    }

    public func hash(into hasher: inout Hasher) {
        // Unused slots hold the same filler, so hashing only the used ones is enough.
        hasher.combine(length)
        if length > 0 { hasher.combine(first) }
        if length > 1 { hasher.combine(second) }
        if length > 2 { hasher.combine(third) }
        if length > 3 { hasher.combine(fourth) }
    }

    /// nft syntax: `10.0.0.1 . tcp . 80`.
    public var description: String { map(\.description).joined(separator: " . ") }
}
