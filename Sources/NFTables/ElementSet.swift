/// The elements of one set or map, by key: reads and writes like `[ValueList: Element]`, but
/// stores each element's key once.
///
/// A dictionary of ``Element`` values keyed by their own key holds the 40-byte key twice: once
/// as the dictionary key and again inside the element. At 100k mirrored ports, spread over
/// sixteen maps whose hash tables are at most three-quarters full, every slot pays for both
/// copies whether it is used or not. Here a slot holds the key and only the rest of the
/// element (data and comment, 40 bytes), and ``Element`` values are rebuilt when read, which
/// costs a copy of a few words.
public struct ElementSet: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    /// An element without its key (what a slot holds besides the key).
    public struct Stored: Hashable, Sendable {
        /// The mapped value in the shapes the agent's maps use, so a slot does not carry a
        /// 40-byte ``ValueList`` for an address and a port (24 bytes instead of 40).
        enum Data: Hashable, Sendable {
            case none
            /// `addr . port`, the value of every DNAT and balance-targets element.
            case target(high: UInt64, low: UInt64, port: UInt16, v6: Bool)
            case verdict(Verdict)
            /// Any other value list (boxed: rare here).
            indirect case values(ValueList)
        }

        var data: Data
        var comment: String?

        init(_ element: Element) {
            comment = element.comment
            switch element.data {
            case nil:
                data = .none
            case .verdict(let verdict)?:
                data = .verdict(verdict)
            case .values(let values)?:
                if values.count == 2, case .address(let address) = values[0], case .port(let port) = values[1] {
                    data = .target(high: address.high, low: address.low, port: port, v6: address.family == .ip6)
                } else {
                    data = .values(values)
                }
            }
        }

        func element(_ key: ValueList) -> Element {
            let value: ElementData?
            switch data {
            case .none: value = nil
            case .verdict(let verdict): value = .verdict(verdict)
            case .values(let values): value = .values(values)
            case .target(let high, let low, let port, let v6):
                // Without an array literal: this runs for every element the encoder and the diff read.
                let address = IPAddress(high: high, low: low, family: v6 ? .ip6 : .ip)
                value = .values(ValueList(count: 2, .address(address), .port(port), .proto(0), .proto(0)))
            }
            return Element(key: key, data: value, comment: comment)
        }
    }

    private var storage: [ValueList: Stored]

    public init() {
        storage = [:]
    }

    /// The elements of `dictionary`, stored under the keys it gives them.
    public init(_ dictionary: [ValueList: Element]) {
        storage = dictionary.mapValues(Stored.init)
    }

    public init(dictionaryLiteral elements: (ValueList, Element)...) {
        storage = Dictionary(elements.map { ($0.0, Stored($0.1)) }, uniquingKeysWith: { _, last in last })
    }

    /// The element stored under `key`; setting stores `newValue` (its key is `key`) or, with
    /// nil, removes it.
    public subscript(key: ValueList) -> Element? {
        get { storage[key]?.element(key) }
        set { storage[key] = newValue.map(Stored.init) }
    }

    /// Whether an element has `key`, without rebuilding it.
    public func contains(_ key: ValueList) -> Bool { storage.index(forKey: key) != nil }

    /// Removes the element under `key`, returning it.
    @discardableResult
    public mutating func removeValue(forKey key: ValueList) -> Element? {
        storage.removeValue(forKey: key)?.element(key)
    }

    /// Makes room for `capacity` elements without growing.
    public mutating func reserveCapacity(_ capacity: Int) {
        storage.reserveCapacity(capacity)
    }

    public var count: Int { storage.count }
    public var isEmpty: Bool { storage.isEmpty }

    /// Every key, in no particular order.
    public var keys: Dictionary<ValueList, Stored>.Keys { storage.keys }

    /// Every element, in no particular order.
    public typealias Values = LazyMapSequence<[ValueList: Stored], Element>

    /// Every element, in no particular order (rebuilt from key and stored part as iterated).
    public var values: Values {
        storage.lazy.map { $0.value.element($0.key) }
    }

    /// Every key with its element, in no particular order.
    public var entries: LazyMapSequence<[ValueList: Stored], (key: ValueList, value: Element)> {
        storage.lazy.map { (key: $0.key, value: $0.value.element($0.key)) }
    }
}
