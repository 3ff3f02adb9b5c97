/// The fast path of ``FeedEvent/decode(line:)``: the event's envelope read straight from the
/// line's bytes with ``JSONCursor``, its cluster, service or snapshot state with the model
/// decoders of ``StateJSONDecoder`` (the same ones that read state files and the persisted
/// feed state), so every path fills the same defaults as the `Codable` conformances
/// (`MirrorState+Codable.swift`).
///
/// Whatever this path does not recognise (an unknown or repeated field, a null where a value
/// is required, numbers with fractions, invalid UTF-8) throws ``JSONCursor/Mismatch`` and the
/// line goes through `JSONDecoder`, which either decodes it the same way or names the error.
/// `FeedFastDecodingTests` checks that both paths agree.
extension FeedEvent {
    /// Lines longer than this hold many objects (a snapshot): their repeated strings and port
    /// lists are interned, as a state file's are. A delta's few objects would only pay for
    /// the interning tables.
    static let interningThreshold = 64 << 10

    static func decodeFast(_ bytes: UnsafeRawBufferPointer) throws -> FeedEvent {
        var decoder = StateJSONDecoder(bytes.assumingMemoryBound(to: UInt8.self), interning: bytes.count > interningThreshold)
        var type: String?, revision: UInt64?, epoch: String?, state: MirrorState?
        var cluster: Cluster?, service: MirroredService?, name: String?, namespace: String?, mirroredName: String?
        var seen = FieldSet()
        var object = try decoder.cursor.openObject()
        while let key = try decoder.cursor.nextKey(&object) {
            if key.spells("type") {
                try seen.mark(0); type = try decoder.cursor.string()
            } else if key.spells("revision") {
                try seen.mark(1); revision = try decoder.cursor.uint64()
            } else if key.spells("epoch") {
                try seen.mark(2); epoch = try decoder.cursor.string()
            } else if key.spells("state") {
                try seen.mark(3); state = try decoder.state()
            } else if key.spells("cluster") {
                try seen.mark(4); cluster = try decoder.cluster()
            } else if key.spells("service") {
                try seen.mark(5); service = try decoder.service()
            } else if key.spells("name") {
                try seen.mark(6); name = try decoder.cursor.string()
            } else if key.spells("namespace") {
                try seen.mark(7); namespace = try decoder.cursor.string()
            } else if key.spells("mirroredName") {
                try seen.mark(8); mirroredName = try decoder.cursor.string()
            } else {
                throw JSONCursor.Mismatch()
            }
        }
        try decoder.cursor.finish()
        guard let type, let revision else { throw JSONCursor.Mismatch() }
        switch type {
        case "snapshot":
            guard let epoch, let state else { break }
            return .snapshot(epoch: epoch, revision: revision, state: state)
        case "resume":
            guard let epoch else { break }
            return .resumed(epoch: epoch, revision: revision)
        case "bookmark":
            return .bookmark(revision: revision)
        case "upsertCluster":
            guard let cluster else { break }
            return .delta(revision: revision, .upsertCluster(cluster))
        case "deleteCluster":
            guard let name else { break }
            return .delta(revision: revision, .deleteCluster(name: name))
        case "upsertService":
            guard let service else { break }
            return .delta(revision: revision, .upsertService(service))
        case "deleteService":
            guard let namespace, let mirroredName else { break }
            return .delta(revision: revision, .deleteService(ServiceKey(namespace: namespace, mirroredName: mirroredName)))
        default:
            break
        }
        throw JSONCursor.Mismatch()
    }
}
