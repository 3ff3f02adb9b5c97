/// The comments of a set's elements, their UTF-8 bytes back to back in one buffer, with an
/// 8-byte reference per element.
///
/// Every mirrored port's element carries its service's name (`namespace/name-cluster`, 20–40
/// bytes): as a `String` that is 16 bytes in the element plus a 64-byte heap object per
/// service, ~8 MB at 100k services. Here it is the name's bytes and one word. A comment that
/// is replaced or removed leaves its bytes behind; once those are more than half the buffer,
/// the buffer is rewritten without them (amortised O(1) per change).
struct CommentArena: Sendable {
    private var bytes: [UInt8] = []
    /// Per element: 0 for no comment, else bit 63 set, the offset in bits 16–62 and the
    /// length in bits 0–15.
    private var references: [UInt64] = []
    /// Bytes in `bytes` no element refers to any more.
    private var garbage = 0
    /// The longest comment stored here (the kernel allows far less: 128 bytes of user data).
    static let maximumLength = 0xffff

    var count: Int { references.count }
    var capacity: Int { references.capacity }

    /// Whether `comment` can be stored here.
    static func fits(_ comment: String?) -> Bool { (comment?.utf8.count ?? 0) <= maximumLength }

    mutating func reserveCapacity(_ count: Int) { references.reserveCapacity(count) }

    subscript(position: Int) -> String? {
        let reference = references[position]
        guard reference != 0 else { return nil }
        let offset = Int((reference & ~(1 << 63)) >> 16), length = Int(reference & 0xffff)
        return bytes.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[offset ..< offset + length]), as: UTF8.self) }
    }

    /// Adds a comment for a new last element.
    mutating func append(_ comment: String?) {
        references.append(0)
        set(comment, at: references.count - 1)
    }

    /// Replaces the comment of element `position`.
    mutating func set(_ comment: String?, at position: Int) {
        release(position)
        guard var comment else { return }
        let offset = bytes.count
        let length = comment.withUTF8 { utf8 in
            bytes.append(contentsOf: utf8)
            return utf8.count
        }
        precondition(length <= Self.maximumLength, "a comment of \(length) bytes (check CommentArena.fits first)")
        references[position] = 1 << 63 | UInt64(offset) << 16 | UInt64(length)
        if garbage > 1 << 16, garbage * 2 > bytes.count { rewrite() }
    }

    /// Element `last` moves to `position` (whose comment goes).
    mutating func move(_ last: Int, to position: Int) {
        release(position)
        references[position] = references[last]
        references[last] = 0
    }

    /// Removes the last element's comment.
    mutating func removeLast() {
        release(references.count - 1)
        references.removeLast()
    }

    /// Gives back unused room: storage grown by doubling, and bytes no longer referred to.
    mutating func trim() {
        if references.capacity > references.count + references.count / 16 + 16 {
            references = [UInt64](unsafeUninitializedCapacity: references.count) { buffer, initialized in
                initialized = buffer.initialize(fromContentsOf: references)
            }
        }
        if bytes.capacity > bytes.count - garbage + (bytes.count - garbage) / 16 + 64 { rewrite() }
    }

    private mutating func release(_ position: Int) {
        garbage += Int(references[position] & 0xffff)
        references[position] = 0
    }

    /// Copies every referenced comment into a buffer of exactly their size.
    private mutating func rewrite() {
        let old = bytes
        bytes = []
        bytes.reserveCapacity(old.count - garbage)
        old.withUnsafeBufferPointer { source in
            for position in references.indices where references[position] != 0 {
                let reference = references[position]
                let offset = Int((reference & ~(1 << 63)) >> 16), length = Int(reference & 0xffff)
                references[position] = 1 << 63 | UInt64(bytes.count) << 16 | UInt64(length)
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: source[offset ..< offset + length]))
            }
        }
        garbage = 0
    }
}
