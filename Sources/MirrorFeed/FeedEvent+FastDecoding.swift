import MirrorModel
/// The fast path of ``FeedEvent/decode(line:)``: the event's envelope read straight from the
/// line's bytes with ``JSONCursor``, its cluster, service, policy or snapshot state with the model
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

    /// An event's possible fields, numbered for ``StateJSONDecoder/object(fields:_:)``.
    private static let eventFields: [StaticString] = ["type", "revision", "epoch", "state", "cluster", "service", "name", "namespace", "mirroredName", "policy"]

    static func decodeFast(_ bytes: UnsafeRawBufferPointer) throws -> FeedEvent {
        var decoder = StateJSONDecoder(bytes.assumingMemoryBound(to: UInt8.self), interning: bytes.count > interningThreshold)
        var type: String?, revision: UInt64?, epoch: String?, state: MirrorState?
        var cluster: Cluster?, service: MirroredService?, name: String?, namespace: String?, mirroredName: String?
        var policy: TrafficPolicy?
        try decoder.object(fields: eventFields) { d, field in
            switch field {
            case 0: type = try d.cursor.string()
            case 1: revision = try d.cursor.uint64()
            case 2: epoch = try d.cursor.string()
            case 3: state = try d.state()
            case 4: cluster = try d.cluster()
            case 5: service = try d.service()
            case 6: name = try d.cursor.string()
            case 7: namespace = try d.cursor.string()
            case 8: mirroredName = try d.cursor.string()
            default: policy = try d.policy()
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
        case "upsertPolicy":
            guard let policy else { break }
            return .delta(revision: revision, .upsertPolicy(policy))
        case "deletePolicy":
            guard let namespace, let name else { break }
            return .delta(revision: revision, .deletePolicy(PolicyKey(namespace: namespace, name: name)))
        default:
            break
        }
        throw JSONCursor.Mismatch()
    }
}
