/// The services of a ``MirrorStore``, looked up by ``ServiceKey``: a dictionary in use, built
/// to stay small at 100k+ services.
///
/// A `[ServiceKey: MirroredService]` holds a copy of each key beside its service and, at
/// 100k entries, sits in 262,144 buckets of 112 bytes (about 290 bytes per service). Here the
/// services lie in one dense array and the hash index holds only positions in it; the
/// key is never stored, it is recomputed from the service (namespace, name, cluster or
/// `federated`) without building its string.
///
/// It reads like the dictionary it replaces (`table[key]`, `keys`, `values`, `count`,
/// `for (key, service) in table`), so callers did not change; iteration order is unspecified.
public struct ServiceTable: Sequence, Equatable, Sendable {
    public typealias Element = (key: ServiceKey, value: MirroredService)

    /// Every service, in no particular order. Chunked, so that changing one service of a
    /// table that is still shared (the agent keeps the last store) copies one chunk.
    public private(set) var values = ChunkedArray<MirroredService>()
    /// Positions in `values`, by key.
    private var index = PositionIndex()

    public init() {}

    public var count: Int { values.count }
    public var isEmpty: Bool { values.isEmpty }

    /// Every key (built on demand: keys are not stored).
    public var keys: [ServiceKey] { values.map(\.key) }

    public subscript(key: ServiceKey) -> MirroredService? {
        position(of: key).map { values[$0] }
    }

    public func makeIterator() -> some IteratorProtocol<Element> {
        values.lazy.map { (key: $0.key, value: $0) }.makeIterator()
    }

    /// Equal when both hold the same services, whatever the order.
    public static func == (lhs: ServiceTable, rhs: ServiceTable) -> Bool {
        lhs.count == rhs.count && lhs.values.allSatisfy { service in rhs[service.key] == service }
    }

    // MARK: changes (the store's)

    /// Where the service with `key` lies in ``values``.
    func position(of key: ServiceKey) -> Int? {
        position(of: ServiceKeyView(key))
    }

    /// Inserts or replaces the service with `service.key`; returns where it now lies and the
    /// service it replaced.
    @discardableResult
    mutating func updateValue(_ service: MirroredService) -> (position: Int, old: MirroredService?) {
        // Hashed once for the lookup and the insert (a 100k-service snapshot inserts them all).
        let view = ServiceKeyView(service)
        let hash = view.hashValue
        if let position = position(of: view, hash: hash) {
            let old = values[position]
            values[position] = service
            return (position, old)
        }
        values.append(service)
        let position = values.count - 1
        index.insert(.init(position: position), hash: hash, rehash: rehash)
        return (position, nil)
    }

    /// Removes the service with `key`; returns it.
    @discardableResult
    mutating func removeValue(forKey key: ServiceKey) -> MirroredService? {
        position(of: key).map { remove(at: $0).removed }
    }

    /// Removes the service at `position`. The last service moves into the hole: `movedFrom`
    /// is its old position (nil when the removed one was last), for owners of other indexes.
    @discardableResult
    mutating func remove(at position: Int) -> (removed: MirroredService, movedFrom: Int?) {
        index.remove(.init(position: position), hash: ServiceKeyView(values[position]).hashValue, rehash: rehash)
        let last = values.count - 1
        guard position != last else { return (values.removeLast(), nil) }
        index.move(.init(position: last), hash: ServiceKeyView(values[last]).hashValue, to: position)
        values.swapAt(position, last)
        return (values.removeLast(), last)
    }

    /// Makes room for `count` services without regrowing.
    mutating func reserveCapacity(_ count: Int) {
        values.reserveCapacity(count)
        index.reserveCapacity(count, rehash: rehash)
    }

    private func position(of key: ServiceKeyView, hash: Int? = nil) -> Int? {
        guard !values.isEmpty else { return nil }
        return index.first(hash: hash ?? key.hashValue) { ServiceKeyView(values[$0.position]) == key }?.position
    }

    private var rehash: (PositionIndex.Entry) -> Int {
        { [values] entry in ServiceKeyView(values[entry.position]).hashValue }
    }
}

/// A ``ServiceKey`` seen through its parts, so a service's key can be hashed and compared
/// without building the `<name>-<cluster>` string.
struct ServiceKeyView: Hashable {
    var namespace: Substring.UTF8View
    /// The mirrored name as a prefix, '-' and a suffix (for a ``ServiceKey`` the whole name
    /// is the prefix and there is no dash or suffix).
    var prefix: Substring.UTF8View
    var suffix: Substring.UTF8View?

    init(_ service: MirroredService) {
        namespace = service.namespace[...].utf8
        prefix = service.name[...].utf8
        suffix = service.mirroredNameSuffix[...].utf8
    }

    init(_ key: ServiceKey) {
        namespace = key.namespace[...].utf8
        prefix = key.mirroredName[...].utf8
        suffix = nil
    }

    /// The bytes of the mirrored name, one by one, without concatenating them.
    private struct NameBytes: IteratorProtocol {
        var prefix: Substring.UTF8View.Iterator
        var dash: Bool
        var suffix: Substring.UTF8View.Iterator?

        mutating func next() -> UInt8? {
            if let byte = prefix.next() { return byte }
            if dash {
                dash = false
                return UInt8(ascii: "-")
            }
            return suffix?.next()
        }
    }

    private var nameBytes: NameBytes {
        NameBytes(prefix: prefix.makeIterator(), dash: suffix != nil, suffix: suffix?.makeIterator())
    }

    private var mirroredNameCount: Int { prefix.count + (suffix.map { $0.count + 1 } ?? 0) }

    /// FNV-1a over the bytes (namespace, a 0xFF separator that UTF-8 never contains, the
    /// mirrored name), handed to `Hasher` once: feeding `Hasher` byte by byte was a tenth of
    /// a 100k-service load.
    func hash(into hasher: inout Hasher) {
        var value: UInt64 = 0xCBF2_9CE4_8422_2325
        func add(_ byte: UInt8) { value = (value ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        for byte in namespace { add(byte) }
        add(0xFF)
        var name = nameBytes
        while let byte = name.next() { add(byte) }
        hasher.combine(value)
    }

    static func == (lhs: ServiceKeyView, rhs: ServiceKeyView) -> Bool {
        guard lhs.mirroredNameCount == rhs.mirroredNameCount, lhs.namespace.elementsEqual(rhs.namespace) else { return false }
        var left = lhs.nameBytes, right = rhs.nameBytes
        while let byte = left.next() {
            guard byte == right.next() else { return false }
        }
        return true
    }
}
