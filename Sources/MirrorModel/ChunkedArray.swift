/// An array split into fixed-size chunks, each its own copy-on-write buffer, so that writing
/// one element of a shared copy copies one chunk and the chunk directory, not everything.
///
/// The store's services live in one: the agent keeps the last store (status board, DNS, the
/// update mailbox) while the next delta is applied to its own copy. With a plain array that
/// delta copied all 100k services (and retained every string in them), milliseconds per
/// delta; here it copies 512 services and a directory of a few hundred references.
///
/// Reads cost a shift and a mask more than an array's. Elements keep their positions as an
/// array's do (append, remove at the end, swap); there is no insertion in the middle.
public struct ChunkedArray<Element>: RandomAccessCollection, MutableCollection {
    /// Elements per chunk, a power of two: big enough that the directory stays small, small
    /// enough that copying one chunk is cheap.
    static var chunkShift: Int { 9 }
    private static var chunkSize: Int { 1 << chunkShift }
    private static var chunkMask: Int { chunkSize - 1 }

    /// Every chunk is full except the last, which is never empty.
    private var chunks: [[Element]] = []
    public private(set) var count = 0

    public init() {}

    /// `count` copies of `element`.
    public init(repeating element: Element, count: Int) {
        var remaining = count
        chunks.reserveCapacity((count + Self.chunkMask) >> Self.chunkShift)
        while remaining > 0 {
            let size = Swift.min(remaining, Self.chunkSize)
            chunks.append([Element](repeating: element, count: size))
            remaining -= size
        }
        self.count = count
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    public subscript(position: Int) -> Element {
        get {
            precondition(position >= 0 && position < count, "ChunkedArray index out of range")
            return chunks[position >> Self.chunkShift][position & Self.chunkMask]
        }
        set {
            precondition(position >= 0 && position < count, "ChunkedArray index out of range")
            chunks[position >> Self.chunkShift][position & Self.chunkMask] = newValue
        }
    }

    public mutating func append(_ element: Element) {
        if count & Self.chunkMask == 0 {
            var chunk: [Element] = []
            chunk.reserveCapacity(Self.chunkSize)
            chunks.append(chunk)
        }
        chunks[chunks.count - 1].append(element)
        count += 1
    }

    @discardableResult
    public mutating func removeLast() -> Element {
        precondition(count > 0, "removeLast from an empty ChunkedArray")
        let element = chunks[chunks.count - 1].removeLast()
        if chunks[chunks.count - 1].isEmpty { chunks.removeLast() }
        count -= 1
        return element
    }

    /// Makes room for `capacity` chunk references (chunks themselves are allocated whole).
    public mutating func reserveCapacity(_ capacity: Int) {
        chunks.reserveCapacity((capacity + Self.chunkMask) >> Self.chunkShift)
    }
}

extension ChunkedArray: Sendable where Element: Sendable {}

extension ChunkedArray: Equatable where Element: Equatable {
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.count == rhs.count && lhs.elementsEqual(rhs)
    }
}
