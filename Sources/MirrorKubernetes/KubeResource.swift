import Foundation

/// Where a kind of object lives in the API: the URL paths are built from this, never by hand.
public struct KubeResource: Sendable, Hashable, CustomStringConvertible {
    /// The API group; empty for the core group (`/api/v1`).
    public var group: String
    public var version: String
    /// The plural name used in URLs (`services`, `endpointslices`).
    public var plural: String
    public var kind: String
    public var namespaced: Bool

    public init(group: String, version: String, plural: String, kind: String, namespaced: Bool = true) {
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
        self.namespaced = namespaced
    }

    /// `v1` or `group/version`, as in an object's `apiVersion`.
    public var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }

    public var description: String { group.isEmpty ? "\(plural).\(version)" : "\(plural).\(version).\(group)" }

    /// The collection: one namespace's objects, or every namespace's when `namespace` is nil.
    public func collectionPath(namespace: String?) -> String {
        var path = group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)"
        if namespaced, let namespace { path += "/namespaces/\(Self.escape(namespace))" }
        return path + "/" + plural
    }

    public func objectPath(namespace: String?, name: String) -> String {
        collectionPath(namespace: namespace) + "/" + Self.escape(name)
    }

    /// Names are DNS labels or subdomains, but a path built from input must never be ambiguous.
    private static func escape(_ segment: String) -> String {
        segment.addingPercentEncoding(withAllowedCharacters: .kubePathSegment) ?? segment
    }
}

extension CharacterSet {
    static let kubePathSegment: CharacterSet = {
        CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:@")
    }()
}

/// An object of a known resource, decoded from and encoded to the API's JSON.
///
/// Only the fields the mirror needs are modelled. Encoding one therefore drops everything
/// else, which is why `KubeClient.update` (PUT, a full replace) is for objects this agent
/// owns wholly (its mirror Services, its Lease), never for objects it merely reads.
public protocol KubeObject: Codable, Sendable {
    static var resource: KubeResource { get }
    var metadata: ObjectMeta { get set }
}

extension KubeObject {
    /// `namespace/name` (or `name` for cluster-scoped objects): the informer's cache key.
    public var key: String { metadata.key }
}

/// The common metadata; `name` is empty only in bookmark events.
public struct ObjectMeta: Codable, Sendable, Hashable {
    public var name: String
    public var namespace: String?
    public var labels: [String: String]?
    public var annotations: [String: String]?
    public var resourceVersion: String?
    public var uid: String?
    /// RFC 3339; set once the object is being deleted (it may linger for its finalizers).
    public var deletionTimestamp: String?

    public init(name: String, namespace: String? = nil, labels: [String: String]? = nil,
                annotations: [String: String]? = nil, resourceVersion: String? = nil) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.annotations = annotations
        self.resourceVersion = resourceVersion
    }

    public var key: String { namespace.map { "\($0)/\(name)" } ?? name }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decodeIfPresent(String.self, forKey: .name) ?? ""
        namespace = try container.decodeIfPresent(String.self, forKey: .namespace)
        labels = try container.decodeIfPresent([String: String].self, forKey: .labels)
        annotations = try container.decodeIfPresent([String: String].self, forKey: .annotations)
        resourceVersion = try container.decodeIfPresent(String.self, forKey: .resourceVersion)
        uid = try container.decodeIfPresent(String.self, forKey: .uid)
        deletionTimestamp = try container.decodeIfPresent(String.self, forKey: .deletionTimestamp)
    }
}

/// One page of a list: the items and the version the list was read at.
public struct KubeList<Object: KubeObject>: Decodable, Sendable {
    public struct Metadata: Decodable, Sendable {
        public var resourceVersion: String?
        /// Set when more pages follow; pass it back as `continue`.
        public var `continue`: String?
        public var remainingItemCount: Int?
    }

    public var metadata: Metadata
    public var items: [Object]

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        metadata = try container.decodeIfPresent(Metadata.self, forKey: .metadata) ?? Metadata()
        // A list with no items may say `"items": null`.
        items = try container.decodeIfPresent([Object].self, forKey: .items) ?? []
    }

    init(resourceVersion: String?, items: [Object]) {
        metadata = Metadata(resourceVersion: resourceVersion)
        self.items = items
    }

    private enum CodingKeys: String, CodingKey { case metadata, items }
}

extension KubeList.Metadata {
    init(resourceVersion: String? = nil) { self.resourceVersion = resourceVersion }
}

/// A port given as a number or a name (`targetPort`).
public enum IntOrString: Codable, Sendable, Hashable, CustomStringConvertible {
    case int(Int)
    case string(String)

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int.self) {
            self = .int(number)
        } else {
            self = .string(try container.decode(String.self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .int(let number): try container.encode(number)
        case .string(let text): try container.encode(text)
        }
    }

    public var description: String {
        switch self {
        case .int(let number): String(number)
        case .string(let text): text
        }
    }
}
