/// One applied change of the mirror state, as sources hand it to the agent.
public struct MirrorUpdate: Sendable {
    /// The whole store after the change.
    public var store: MirrorStore
    /// What the change touched.
    public var changes: ChangeSet
    /// Whether the source decoded a whole state document for it (a snapshot, a re-read state
    /// file): however few services changed, large transient buffers were used and freed.
    public var rebuilt: Bool

    public init(store: MirrorStore, changes: ChangeSet, rebuilt: Bool = false) {
        self.store = store
        self.changes = changes
        self.rebuilt = rebuilt
    }
}

/// Where the agent's mirror state comes from: a state file, or (later) the mirror feed.
///
/// A source runs until its task is cancelled. It calls `onUpdate` for each valid change, in
/// order, and never for an invalid one: invalid input is logged and the last good state
/// stays in force.
public protocol MirrorSource: Sendable {
    /// A short description for logs and `dump`: `file:/etc/mirror/state.yaml`.
    var description: String { get }

    func run(onUpdate: @escaping @Sendable (MirrorUpdate) async -> Void) async throws
}
