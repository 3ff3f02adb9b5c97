/// The elements of one add or delete operation: either a list of its own (a diff's changes)
/// or a whole set of a desired table, shared rather than copied.
///
/// A table created from empty sends every element of the desired model; listing them in an
/// array first would copy 100k elements (about 14 MB) only to encode them once. Sharing the
/// model's dictionary costs nothing (copy-on-write) and the encoder walks it directly.
public struct ElementList: Sequence, Sendable, Equatable, ExpressibleByArrayLiteral {
    private enum Storage: Sendable {
        case list([Element])
        case set(ElementSet)
    }

    private let storage: Storage

    public init(_ elements: [Element]) {
        storage = .list(elements)
    }

    /// Every element of a set, by key, without copying it.
    public init(set elements: ElementSet) {
        storage = .set(elements)
    }

    public init(arrayLiteral elements: Element...) {
        self.init(elements)
    }

    public var count: Int {
        switch storage {
        case .list(let elements): elements.count
        case .set(let elements): elements.count
        }
    }

    public var isEmpty: Bool { count == 0 }

    public var underestimatedCount: Int { count }

    /// The element at `offset` in iteration order (linear for a shared set; for error reports).
    public func element(atOffset offset: Int) -> Element? {
        guard offset >= 0, offset < count else { return nil }
        switch storage {
        case .list(let elements): return elements[offset]
        case .set(let elements):
            var iterator = elements.values.makeIterator()
            for _ in 0 ..< offset { _ = iterator.next() }
            return iterator.next()
        }
    }

    public struct Iterator: IteratorProtocol {
        fileprivate var list: IndexingIterator<[Element]>?
        fileprivate var set: ElementSet.Values.Iterator?

        public mutating func next() -> Element? {
            if list != nil { return list?.next() }
            return set?.next()
        }
    }

    public func makeIterator() -> Iterator {
        switch storage {
        case .list(let elements): Iterator(list: elements.makeIterator(), set: nil)
        case .set(let elements): Iterator(list: nil, set: elements.values.makeIterator())
        }
    }

    /// The same elements, whatever the order or storage.
    public static func == (lhs: ElementList, rhs: ElementList) -> Bool {
        if case .list(let a) = lhs.storage, case .list(let b) = rhs.storage { return a == b }
        guard lhs.count == rhs.count else { return false }
        var byKey = ElementSet()
        for element in lhs { byKey[element.key] = element }
        return rhs.allSatisfy { byKey[$0.key] == $0 }
    }
}
