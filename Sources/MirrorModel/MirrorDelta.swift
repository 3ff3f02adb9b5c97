/// One change to the mirror state: an upsert or delete of a single cluster, service or
/// traffic policy.
///
/// Deltas are what the feed sends after its snapshot, so a change to one endpoint costs the
/// size of one service, not of the whole state.
public enum MirrorDelta: Equatable, Sendable {
    case upsertCluster(Cluster)
    case deleteCluster(name: String)
    case upsertService(MirroredService)
    case deleteService(ServiceKey)
    case upsertPolicy(TrafficPolicy)
    case deletePolicy(PolicyKey)

    /// A short description for logs: `upsert service default/bar-paris`.
    public var summary: String {
        switch self {
        case .upsertCluster(let cluster): "upsert cluster \(cluster.name)"
        case .deleteCluster(let name): "delete cluster \(name)"
        case .upsertService(let service): "upsert service \(service.key)"
        case .deleteService(let key): "delete service \(key)"
        case .upsertPolicy(let policy): "upsert policy \(policy.key)"
        case .deletePolicy(let key): "delete policy \(key)"
        }
    }
}

/// What one applied snapshot or delta changed, so DNS and nftables can update only that.
public struct ChangeSet: Equatable, Sendable {
    public var addedClusters: Set<String> = []
    public var removedClusters: Set<String> = []
    public var changedClusters: Set<String> = []
    public var addedServices: Set<ServiceKey> = []
    public var removedServices: Set<ServiceKey> = []
    public var changedServices: Set<ServiceKey> = []
    public var addedPolicies: Set<PolicyKey> = []
    public var removedPolicies: Set<PolicyKey> = []
    /// Policies whose content changed (weights, failover, local readiness, …). A policy whose
    /// mirrors changed is not in here: follow ``MirrorStore/policies(referencingAny:)``.
    public var changedPolicies: Set<PolicyKey> = []
    /// The cluster domain changed: every DNS name changed.
    public var clusterDomainChanged = false

    public init() {}

    public var isEmpty: Bool {
        addedClusters.isEmpty && removedClusters.isEmpty && changedClusters.isEmpty
            && addedServices.isEmpty && removedServices.isEmpty && changedServices.isEmpty
            && addedPolicies.isEmpty && removedPolicies.isEmpty && changedPolicies.isEmpty
            && !clusterDomainChanged
    }

    /// Merges a later change into this one (used to coalesce bursts).
    ///
    /// An object added then removed cancels out; removed then added counts as changed.
    public mutating func merge(_ later: ChangeSet) {
        Self.merge(&addedClusters, &removedClusters, &changedClusters, later.addedClusters, later.removedClusters, later.changedClusters)
        Self.merge(&addedServices, &removedServices, &changedServices, later.addedServices, later.removedServices, later.changedServices)
        Self.merge(&addedPolicies, &removedPolicies, &changedPolicies, later.addedPolicies, later.removedPolicies, later.changedPolicies)
        clusterDomainChanged = clusterDomainChanged || later.clusterDomainChanged
    }

    private static func merge<T: Hashable>(_ added: inout Set<T>, _ removed: inout Set<T>, _ changed: inout Set<T>,
                                           _ laterAdded: Set<T>, _ laterRemoved: Set<T>, _ laterChanged: Set<T>) {
        for item in laterAdded {
            if removed.remove(item) != nil { changed.insert(item) } else { added.insert(item) }
        }
        for item in laterRemoved {
            if added.remove(item) != nil { continue }
            changed.remove(item)
            removed.insert(item)
        }
        for item in laterChanged where !added.contains(item) {
            changed.insert(item)
        }
    }
}
