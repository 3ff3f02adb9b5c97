/// A note the reconciler leaves in the kernel, in the same atomic batch as its changes: the
/// ruleset generation that batch produces and the digest of the ruleset it established.
///
/// It lives in a one-element set of the first owned table, which the reader and the diff
/// never see. A restarted agent reads it back (one tiny dump) and, when the kernel is still at
/// that generation — no process has committed anything since, in this network namespace —
/// and its own desired ruleset has the same digest, the kernel holds exactly that ruleset:
/// the reconcile sends an empty batch without reading every element back. Any other commit
/// moves the generation, and the marker is then ignored (full read and diff); a marker is
/// never trusted on its own, only together with the generation check.
public struct ReconcileMarker: Equatable, Sendable {
    /// The table holding the marker (the reconciler's first owned table).
    public var table: TableID
    /// The ruleset generation right after the batch that wrote this marker.
    public var generation: UInt32
    /// ``RulesetDigest/value`` of the ruleset that batch established.
    public var digest: UInt64

    public init(table: TableID, generation: UInt32, digest: UInt64) {
        self.table = table
        self.generation = generation
        self.digest = digest
    }

    static let setName = "reconcile-marker"
    static let set = NFTSet(name: setName, keyTypes: [.inetService])
    static let key: ValueList = [.port(0)]

    /// The marker as the set element that carries it (in its comment).
    var element: Element {
        Element(key: Self.key, comment: "generation \(generation) digest \(String(digest, radix: 16))")
    }

    /// Parses a marker element's comment; nil when it is not one.
    init?(table: TableID, comment: String) {
        let words = comment.split(separator: " ")
        guard words.count == 4, words[0] == "generation", words[2] == "digest",
              let generation = UInt32(words[1]), let digest = UInt64(words[3], radix: 16) else { return nil }
        self.init(table: table, generation: generation, digest: digest)
    }

    /// The operations that replace the marker, appended after a transaction's own: the set is
    /// created if missing (a table created or replaced in the batch has none), emptied, and
    /// given the new element.
    var operations: [Operation] {
        [.addSet(table, Self.set), .flushSet(table, Self.setName), .addElements(table, set: Self.setName, [element])]
    }

    /// The generation the kernel moves to after a commit at `generation` (0 is skipped).
    static func generation(after generation: UInt32) -> UInt32 {
        generation == UInt32.max ? 1 : generation + 1
    }
}
