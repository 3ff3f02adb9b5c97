/// The elements of one set or map, by key: reads and writes like `[ValueList: Element]`, in
/// about a fifth of the memory.
///
/// At 100k mirrored ports a dictionary of elements paid for two 40-byte ``ValueList``s per
/// element (key and value) plus a comment, in hash tables kept at most three-quarters full
/// and rounded up to a power of two: 80–200 bytes per element. Every element of one set has
/// keys (and values) of the same shape, so here the shape is kept once per set and each
/// element is stored densely, packed into a few words (``ValueList/pack(into:)``): an IPv4
/// DNAT element is one key word, one value word and its comment's bytes (``CommentArena``);
/// a verdict is a small index
/// into the set's few distinct verdicts. A separate open-addressing index of 32-bit
/// positions finds a key. Removing swaps the last element into the hole, so storage stays
/// dense. ``Element`` values are rebuilt when read, which costs a few shifts.
///
/// Elements of another shape than the set's (never in the agent's own tables) are kept in an
/// ordinary dictionary beside the dense part.
public struct ElementSet: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    /// The shape of the dense part's keys (set by the first element stored).
    private var keyShape: UInt16?
    private var keyWordCount = 0
    /// How the dense part stores values.
    private var dataShape: DataShape?
    private var dataWordCount = 0
    /// Key words of element i at `i * keyWordCount`, value words at `i * dataWordCount`.
    private var keyWords: [UInt64] = []
    private var dataWords: [UInt64] = []
    private var comments = CommentArena()
    /// The distinct verdicts of a verdict map (the value word is a position here).
    private var verdicts: [Verdict] = []
    private var index = ElementIndex()
    /// Elements whose key or value does not have the dense part's shape.
    private var other: [ValueList: Element] = [:]

    /// How the value side of dense elements is stored.
    private enum DataShape: Equatable {
        case none
        case values(UInt16)
        case verdict
    }

    public init() {}

    /// The elements of `dictionary`, stored under the keys it gives them.
    public init(_ dictionary: [ValueList: Element]) {
        reserveCapacity(dictionary.count)
        for (key, element) in dictionary { self[key] = element }
    }

    public init(dictionaryLiteral elements: (ValueList, Element)...) {
        for (key, element) in elements { self[key] = element }
    }

    /// The number of dense elements.
    private var denseCount: Int { comments.count }
    public var count: Int { denseCount + other.count }
    public var isEmpty: Bool { count == 0 }

    /// The element stored under `key`; setting stores `newValue` (its key is `key`) or, with
    /// nil, removes it.
    public subscript(key: ValueList) -> Element? {
        get {
            if let position = position(of: key) { return element(at: position) }
            return other.isEmpty ? nil : other[key]
        }
        set {
            guard let newValue else {
                removeValue(forKey: key)
                return
            }
            store(Element(key: key, data: newValue.data, comment: newValue.comment))
        }
    }

    /// Whether an element has `key`, without rebuilding it.
    public func contains(_ key: ValueList) -> Bool {
        position(of: key) != nil || (!other.isEmpty && other[key] != nil)
    }

    /// Removes the element under `key`, returning it.
    @discardableResult
    public mutating func removeValue(forKey key: ValueList) -> Element? {
        guard let position = position(of: key) else { return other.isEmpty ? nil : other.removeValue(forKey: key) }
        let removed = element(at: position)
        removeDense(at: position, key: key)
        return removed
    }

    /// Makes room for `capacity` elements without growing.
    public mutating func reserveCapacity(_ capacity: Int) {
        comments.reserveCapacity(capacity)
        if keyShape != nil { reserveWords(capacity) }
        do {
            let hashOf = hashFunction
            index.reserveCapacity(capacity, hashOf: hashOf)
        }
    }

    /// Gives back the room reserved or grown beyond the current count (after a bulk build:
    /// arrays grown by doubling can be up to half empty).
    public mutating func trim() {
        comments.trim()
        do {
            let hashOf = hashFunction
            index.trim(hashOf: hashOf)
        }
        guard keyWords.capacity > keyWords.count + keyWords.count / 16 + 16 else { return }
        keyWords = Self.exactCopy(keyWords)
        dataWords = Self.exactCopy(dataWords)
    }

    private static func exactCopy<T>(_ array: [T]) -> [T] {
        [T](unsafeUninitializedCapacity: array.count) { buffer, initialized in
            initialized = buffer.initialize(fromContentsOf: array)
        }
    }

    private mutating func reserveWords(_ capacity: Int) {
        keyWords.reserveCapacity(capacity * keyWordCount)
        dataWords.reserveCapacity(capacity * dataWordCount)
    }

    /// Adds `delta` to the count an element under `key` holds as its value (`[.number(n)]`),
    /// removing it at zero; returns the counts before and after. One lookup where reading and
    /// then setting the element would take two and rebuild it: ``UseCounts`` runs this for
    /// every masqueraded port of a bulk build.
    mutating func adjustCount(_ key: ValueList, by delta: Int) -> (before: Int, after: Int) {
        if denseCount > 0, key.shape == keyShape, dataShape == .values(Self.countShape) {
            let packed = PackedKey(key)
            if let position = find(packed) {
                // A one-number value packs into the low 32 bits of one word.
                let before = Int(dataWords[position])
                let after = max(0, before + delta)
                if after == 0 { removeDense(at: position, key: key) } else { dataWords[position] = UInt64(UInt32(clamping: after)) }
                return (before, after)
            }
        }
        var before = 0
        if case .values(let values)? = self[key]?.data, case .number(let number)? = values.first { before = Int(number) }
        let after = max(0, before + delta)
        self[key] = after > 0 ? Element(key: key, data: .values([.number(UInt32(clamping: after))])) : nil
        return (before, after)
    }

    private static let countShape = ValueList([.number(0)]).shape

    // MARK: Dense storage

    /// The shape values of `data` take in the dense part, if they fit the set's.
    private func denseData(_ data: ElementData?) -> DataShape {
        switch data {
        case nil: .none
        case .values(let values)?: .values(values.shape)
        case .verdict?: .verdict
        }
    }

    private mutating func store(_ element: Element) {
        if keyShape == nil, denseCount == 0 {
            keyShape = element.key.shape
            keyWordCount = ValueList.packedWordCount(shape: element.key.shape)
            let shape = denseData(element.data)
            dataShape = shape
            if case .values(let valueShape) = shape { dataWordCount = ValueList.packedWordCount(shape: valueShape) }
            if case .verdict = shape { dataWordCount = 1 }
            reserveWords(comments.capacity)
        }
        // Lists that pack into no words at all (empty) stay in the dictionary too: dense
        // storage addresses every element by a non-empty run of words.
        guard element.key.shape == keyShape, denseData(element.data) == dataShape, CommentArena.fits(element.comment),
              keyWordCount > 0, dataWordCount > 0 || dataShape == DataShape.none else {
            if let position = position(of: element.key) { removeDense(at: position, key: element.key) }
            other[element.key] = element
            return
        }
        if !other.isEmpty { other[element.key] = nil }
        let key = PackedKey(element.key)
        if let position = find(key) {
            comments.set(element.comment, at: position)
            writeData(element.data, at: position)
            return
        }
        if index.isFull {
            // Grown before the new key is added: the hash function sees the indexed keys only.
            let hashOf = hashFunction
            index.reserveCapacity(denseCount + 1, hashOf: hashOf)
        }
        let position = denseCount
        key.withWords { keyWords.append(contentsOf: $0) }
        dataWords.append(contentsOf: repeatElement(0, count: dataWordCount))
        comments.append(element.comment)
        index.insert(position, hash: key.hash)
        writeData(element.data, at: position)
    }

    private mutating func writeData(_ data: ElementData?, at position: Int) {
        switch data {
        case .values(let values)?:
            dataWords.withUnsafeMutableBufferPointer { words in
                guard let base = words.baseAddress else { return }
                values.pack(into: base + position * dataWordCount)
            }
        case .verdict(let verdict)?:
            let slot = verdicts.firstIndex(of: verdict) ?? { verdicts.append(verdict); return verdicts.count - 1 }()
            dataWords[position] = UInt64(slot)
        case nil:
            break
        }
    }

    /// The dense position of `key`, if stored.
    private func find(_ key: PackedKey) -> Int? {
        keyWords.withUnsafeBufferPointer { words in
            index.find(hash: key.hash) { position in key.matches(words.baseAddress! + position * keyWordCount) }
        }
    }

    private func position(of key: ValueList) -> Int? {
        guard denseCount > 0, key.shape == keyShape else { return nil }
        return find(PackedKey(key))
    }

    private func key(at position: Int) -> ValueList {
        keyWords.withUnsafeBufferPointer { words in
            ValueList(shape: keyShape ?? 0, packed: words.baseAddress! + position * keyWordCount)
        }
    }

    private func element(at position: Int) -> Element {
        let data: ElementData?
        switch dataShape {
        case .values(let shape)?:
            data = .values(dataWords.withUnsafeBufferPointer { ValueList(shape: shape, packed: $0.baseAddress! + position * dataWordCount) })
        case .verdict?:
            data = .verdict(verdicts[Int(dataWords[position])])
        case .none?, nil:
            data = nil
        }
        return Element(key: key(at: position), data: data, comment: comments[position])
    }

    /// Removes dense element `position` (whose key is `key`): the last element moves into
    /// its place.
    private mutating func removeDense(at position: Int, key: ValueList) {
        let last = denseCount - 1
        do {
            // The hash function holds the key words: it must be gone before they change, or
            // the first write below would copy them all.
            let hashOf = hashFunction
            index.remove(position, hash: PackedKey(key).hash, hashOf: hashOf)
            if position != last { index.move(last, to: position, hash: hashOf(last)) }
        }
        if position != last {
            for offset in 0 ..< keyWordCount { keyWords[position * keyWordCount + offset] = keyWords[last * keyWordCount + offset] }
            for offset in 0 ..< dataWordCount { dataWords[position * dataWordCount + offset] = dataWords[last * dataWordCount + offset] }
            comments.move(last, to: position)
        }
        keyWords.removeLast(keyWordCount)
        dataWords.removeLast(dataWordCount)
        comments.removeLast()
    }

    /// The hash of the dense key at a position, over a copy of the key words (so the index
    /// can call it while it is being changed).
    private var hashFunction: (Int) -> UInt64 {
        let words = keyWords, count = keyWordCount
        return { position in
            words.withUnsafeBufferPointer { Self.hash(packed: $0.baseAddress! + position * count, count: count) }
        }
    }

    /// A deterministic hash of packed key words.
    fileprivate static func hash(packed words: UnsafePointer<UInt64>, count: Int) -> UInt64 {
        var hash: UInt64 = 0x243f_6a88_85a3_08d3
        for offset in 0 ..< count {
            let product = (hash ^ words[offset]).multipliedFullWidth(by: 0x9e37_79b9_7f4a_7c15)
            hash = product.high ^ product.low
        }
        return hash
    }

    // MARK: Iteration

    /// Every element, in no particular order (rebuilt as iterated).
    public struct Values: Sequence {
        fileprivate let owner: ElementSet

        public struct Iterator: IteratorProtocol {
            fileprivate let owner: ElementSet
            fileprivate var position = 0
            fileprivate var other: Dictionary<ValueList, Element>.Values.Iterator

            public mutating func next() -> Element? {
                if position < owner.denseCount {
                    defer { position += 1 }
                    return owner.element(at: position)
                }
                return other.next()
            }
        }

        public func makeIterator() -> Iterator { Iterator(owner: owner, other: owner.other.values.makeIterator()) }
        public var underestimatedCount: Int { owner.count }
    }

    /// Every element, in no particular order.
    public var values: Values { Values(owner: self) }

    /// Every key, in no particular order: unpacked from the dense storage alone (building
    /// whole elements would rebuild each comment string for nothing).
    public var keys: Keys { Keys(owner: self) }

    public struct Keys: Sequence {
        fileprivate let owner: ElementSet

        public struct Iterator: IteratorProtocol {
            fileprivate let owner: ElementSet
            fileprivate var position = 0
            fileprivate var other: Dictionary<ValueList, Element>.Keys.Iterator

            public mutating func next() -> ValueList? {
                if position < owner.denseCount {
                    defer { position += 1 }
                    return owner.key(at: position)
                }
                return other.next()
            }
        }

        public func makeIterator() -> Iterator { Iterator(owner: owner, other: owner.other.keys.makeIterator()) }
        public var underestimatedCount: Int { owner.count }
    }

    /// Every key with its element, in no particular order.
    public var entries: LazyMapSequence<Values, (key: ValueList, value: Element)> {
        values.lazy.map { (key: $0.key, value: $0) }
    }

    /// The same elements, whatever the storage order.
    public static func == (lhs: ElementSet, rhs: ElementSet) -> Bool {
        lhs.count == rhs.count && lhs.values.allSatisfy { rhs[$0.key] == $0 }
    }
}

/// A key packed once (``ValueList/pack(into:)``) with its hash, for probing and storing
/// without packing it again per step.
private struct PackedKey {
    private var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    private let count: Int
    private(set) var hash: UInt64 = 0

    init(_ key: ValueList) {
        count = ValueList.packedWordCount(shape: key.shape)
        withUnsafeMutableBytes(of: &words) { key.pack(into: $0.baseAddress!.assumingMemoryBound(to: UInt64.self)) }
        let count = count
        hash = withWords { ElementSet.hash(packed: $0.baseAddress!, count: count) }
    }

    /// Calls `body` with the packed words.
    func withWords<R>(_ body: (UnsafeBufferPointer<UInt64>) -> R) -> R {
        withUnsafeBytes(of: words) { body(UnsafeBufferPointer(start: $0.baseAddress!.assumingMemoryBound(to: UInt64.self), count: count)) }
    }

    /// Whether the words at `stored` are this key's.
    func matches(_ stored: UnsafePointer<UInt64>) -> Bool {
        withWords { words in
            for offset in 0 ..< count where stored[offset] != words[offset] { return false }
            return true
        }
    }
}
