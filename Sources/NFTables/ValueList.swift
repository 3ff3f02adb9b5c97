/// A set key or map value: up to three ``Value``s (a concatenation), stored inline.
///
/// Keys of hundreds of thousands of elements are hashed and compared on every diff; keeping
/// them out of the heap (unlike `[Value]`) saves an allocation per key and makes hashing cheap.
public struct ValueList: Hashable, Sendable, RandomAccessCollection, ExpressibleByArrayLiteral, CustomStringConvertible {
    /// The most parts a concatenation may have here.
    public static let capacity = 3
    private var first: Value
    private var second: Value
    private var third: Value
    private let length: UInt8

    /// - Precondition: at most ``capacity`` values (a programming error otherwise).
    public init(_ values: some Collection<Value>) {
        precondition(values.count <= Self.capacity, "a set key or map value has at most \(Self.capacity) parts")
        let filler = Value.proto(0)
        var iterator = values.makeIterator()
        first = iterator.next() ?? filler
        second = iterator.next() ?? filler
        third = iterator.next() ?? filler
        length = UInt8(values.count)
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
        default: return third
        }
    }

    public static func == (lhs: ValueList, rhs: ValueList) -> Bool {
        lhs.length == rhs.length && lhs.first == rhs.first && lhs.second == rhs.second && lhs.third == rhs.third
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(length)
        hasher.combine(first)
        hasher.combine(second)
        hasher.combine(third)
    }

    /// nft syntax: `10.0.0.1 . tcp . 80`.
    public var description: String { map(\.description).joined(separator: " . ") }
}
