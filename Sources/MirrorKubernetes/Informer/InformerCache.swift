import Foundation

/// A change to an informer's cache, as its consumer sees it.
public enum InformerEvent<Object: KubeObject>: Sendable {
    case added(Object)
    case updated(old: Object, new: Object)
    /// The object's last state (the DELETED event's, or the cached one after a re-list).
    case deleted(Object)
    /// A complete list was applied (the first one, or a re-list after 410): the cache now
    /// holds the server's whole state, so a consumer can publish what it built.
    case synced
}

extension InformerEvent: Equatable where Object: Equatable {}

/// What an informer reports for `dump` and metrics.
public struct InformerHealth: Sendable, Equatable {
    public var resource: String
    public var namespace: String?
    public var labelSelector: String?
    /// A complete list has been applied at least once (it stays true while the server is
    /// unreachable: the cache keeps the last state it heard).
    public var hasSynced = false
    /// A watch is open right now.
    public var isWatching = false
    public var resourceVersion: String?
    public var objects = 0
    public var lastSyncTime: Date?
    /// The last thing heard from the server on a watch (a change or a bookmark).
    public var lastEventTime: Date?
    public var lastError: String?
    public var lastErrorTime: Date?
    /// Failures since the last success; the backoff grows with it.
    public var consecutiveFailures = 0
    public var lists = 0
    public var watches = 0

    init(resource: String, namespace: String?, labelSelector: String?) {
        self.resource = resource
        self.namespace = namespace
        self.labelSelector = labelSelector
    }
}

/// The objects by `namespace/name`, and the rules that turn lists and watch events into
/// exactly the changes a consumer must see: no event for a version already held (a replayed
/// watch event), and a delete for everything a re-list no longer returns.
struct InformerCache<Object: KubeObject> {
    private(set) var objects: [String: Object] = [:]

    /// Replaces the whole cache with a list's items; returns the differences, updates and
    /// additions in key order, then deletions in key order.
    mutating func replace(with items: [Object]) -> [InformerEvent<Object>] {
        var next: [String: Object] = [:]
        next.reserveCapacity(items.count)
        for item in items { next[item.key] = item }
        var changes: [InformerEvent<Object>] = []
        for key in next.keys.sorted() {
            guard let item = next[key] else { continue }
            if let old = objects[key] {
                if old.metadata.resourceVersion != item.metadata.resourceVersion { changes.append(.updated(old: old, new: item)) }
            } else {
                changes.append(.added(item))
            }
        }
        for key in objects.keys.sorted() where next[key] == nil {
            if let old = objects[key] { changes.append(.deleted(old)) }
        }
        objects = next
        return changes
    }

    /// Applies one watch event; nil when it changes nothing the cache does not already hold.
    mutating func apply(_ event: KubeWatchEvent<Object>) -> InformerEvent<Object>? {
        switch event {
        case .added(let object), .modified(let object):
            let key = object.key
            guard let old = objects[key] else {
                objects[key] = object
                return .added(object)
            }
            if old.metadata.resourceVersion == object.metadata.resourceVersion, object.metadata.resourceVersion != nil {
                return nil
            }
            objects[key] = object
            return .updated(old: old, new: object)
        case .deleted(let object):
            guard objects.removeValue(forKey: object.key) != nil else { return nil }
            return .deleted(object)
        case .bookmark, .error:
            return nil
        }
    }
}
