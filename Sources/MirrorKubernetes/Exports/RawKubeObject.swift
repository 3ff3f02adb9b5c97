import Foundation

/// An object of `Model`'s resource kept as the exact JSON the API server sent, with its
/// metadata decoded: for replacing (PUT) an object this agent does not own — an exported
/// Service whose gateway-ports annotation it writes — without dropping the fields the
/// modelled types leave out (session affinity, traffic policies, finalizers, owner
/// references, …). Only `metadata.annotations` and `metadata.resourceVersion` are written
/// back from ``metadata``; everything else goes back as it came.
struct RawKubeObject<Model: KubeObject>: KubeObject {
    static var resource: KubeResource { Model.resource }

    var metadata: ObjectMeta
    /// The whole object as received, `apiVersion` and `kind` aside (the request adds them).
    private var fields: [String: JSONValue]

    init(from decoder: any Decoder) throws {
        let value = try JSONValue(from: decoder)
        guard case .object(var fields) = value else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an object"))
        }
        fields["apiVersion"] = nil
        fields["kind"] = nil
        self.fields = fields
        metadata = try ObjectMeta(from: decoder.container(keyedBy: TopKeys.self).superDecoder(forKey: .metadata))
    }

    func encode(to encoder: any Encoder) throws {
        var metadataFields: [String: JSONValue] = [:]
        if case .object(let received)? = fields["metadata"] { metadataFields = received }
        metadataFields["annotations"] = metadata.annotations.map { .object($0.mapValues(JSONValue.string)) }
        metadataFields["resourceVersion"] = metadata.resourceVersion.map(JSONValue.string)
        var out = fields
        out["metadata"] = .object(metadataFields)
        var container = encoder.container(keyedBy: AnyKey.self)
        for (key, value) in out {
            try container.encode(value, forKey: AnyKey(key))
        }
    }

    /// The object as its model type (what the rest of the code reads).
    func decoded() throws -> Model {
        var model = try JSONDecoder().decode(Model.self, from: JSONEncoder().encode(self))
        model.metadata = metadata
        return model
    }

    private enum TopKeys: String, CodingKey { case metadata }

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

/// Any JSON value, kept as it was read (integers stay integers).
enum JSONValue: Codable, Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}
