/// The current mirror state and its revision, changed only by whole snapshots or by single
/// deltas, each validated before it is applied.
///
/// A rejected snapshot or delta leaves the store exactly as it was: the last good state stays
/// in force. Each successful apply returns a ``ChangeSet`` naming what changed.
public struct MirrorStore: Sendable {
    /// The revision of the last applied snapshot or delta; 0 before the first.
    public private(set) var revision: UInt64 = 0
    public private(set) var clusterDomain = MirrorState.defaultClusterDomain
    public private(set) var clusters: [String: Cluster] = [:]
    /// Looked up like a `[ServiceKey: MirroredService]`, stored in a fraction of its memory.
    public private(set) var services = ServiceTable()
    /// Which service owns each `ip proto port` slot, to reject conflicting upserts cheaply.
    private var slotOwners = ServiceSlotIndex()

    public init() {}

    /// The whole state, clusters and services sorted by name, as a feed snapshot carries it.
    ///
    /// Each service's key is built once, not at every comparison of the sort (building one
    /// allocates for names over 15 bytes; 100k services take 3.4M comparisons).
    public var state: MirrorState {
        let keys = services.values.map(\.key)
        let order = keys.indices.sorted { keys[$0] < keys[$1] }
        return MirrorState(
            clusterDomain: clusterDomain,
            clusters: clusters.values.sorted { $0.name < $1.name },
            services: order.map { services.values[$0] }
        )
    }

    /// The services whose traffic depends on `cluster` (e.g. to re-translate after its
    /// gateway died): its own services and those with an endpoint there.
    ///
    /// A scan, not an index: it runs only when a cluster changes (then those services are
    /// all re-translated anyway), and an index would cost 40+ bytes per service for good.
    public func services(referencing cluster: String) -> Set<ServiceKey> {
        services(referencingAny: [cluster])
    }

    /// The services that depend on any of `clusters`, in one scan however many there are.
    public func services(referencingAny clusters: Set<String>) -> Set<ServiceKey> {
        var keys = Set<ServiceKey>()
        guard !clusters.isEmpty else { return keys }
        for service in services.values where Self.references(service, clusters) { keys.insert(service.key) }
        return keys
    }

    /// How many services depend on each cluster (clusters no service uses are absent), in
    /// one scan.
    public func serviceCountsByCluster() -> [String: Int] {
        var counts: [String: Int] = [:]
        for service in services.values {
            var seen = Set<String>()
            if let cluster = service.cluster { seen.insert(cluster) }
            for endpoint in service.endpoints { if let cluster = endpoint.cluster { seen.insert(cluster) } }
            for cluster in seen { counts[cluster, default: 0] += 1 }
        }
        return counts
    }

    private static func references(_ service: MirroredService, _ clusters: Set<String>) -> Bool {
        if let cluster = service.cluster, clusters.contains(cluster) { return true }
        return service.endpoints.contains { $0.cluster.map(clusters.contains) ?? false }
    }

    /// Replaces everything with `snapshot`.
    ///
    /// Any revision is accepted: a snapshot may come from a restarted feed server.
    /// - Throws: ``InvalidStateError`` when the snapshot is invalid; nothing is changed.
    @discardableResult
    public mutating func applySnapshot(_ snapshot: MirrorState, revision: UInt64) throws -> ChangeSet {
        try applySnapshot(snapshot, revision: revision, validated: false)
    }

    /// Replaces everything with the state in the file at `path` (YAML or JSON).
    ///
    /// Same as reading the file with ``MirrorState/init(contentsOf:)`` and applying it, but
    /// the state is validated once instead of twice (a tenth of a second at 100k services,
    /// on the agent's restart path).
    /// - Throws: ``StateFileError``, ``DocumentSyntaxError`` or ``InvalidStateError``;
    ///   nothing is changed.
    @discardableResult
    public mutating func applySnapshot(contentsOf path: String, revision: UInt64) throws -> ChangeSet {
        try applySnapshot(try MirrorState(contentsOf: path), revision: revision, validated: true)
    }

    private mutating func applySnapshot(_ snapshot: MirrorState, revision: UInt64, validated: Bool) throws -> ChangeSet {
        if !validated { try snapshot.validate() }
        var changes = ChangeSet()
        changes.clusterDomainChanged = snapshot.clusterDomain != clusterDomain
        let newClusters = Dictionary(snapshot.clusters.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        // Built in place (no array of pairs first): at 100k services that array alone would be
        // 10+ MiB of peak memory. Validation guarantees the keys are unique.
        var newServices = ServiceTable()
        newServices.reserveCapacity(snapshot.services.count)
        for service in snapshot.services { newServices.updateValue(service) }
        Self.diff(old: clusters, new: newClusters, added: &changes.addedClusters, removed: &changes.removedClusters, changed: &changes.changedClusters)
        Self.diff(old: services, new: newServices, changes: &changes)
        clusterDomain = snapshot.clusterDomain
        clusters = newClusters
        services = newServices
        slotOwners = ServiceSlotIndex()
        slotOwners.reserveCapacity(newServices.values.reduce(0) { $0 + $1.ips.count * $1.ports.count }, in: newServices.values)
        for position in newServices.values.indices { slotOwners.insertSlots(ofServiceAt: position, in: newServices.values) }
        self.revision = revision
        return changes
    }

    /// Applies one delta produced at `revision`.
    ///
    /// - Throws: ``StoreError/outOfOrder`` when `revision` is not newer than the store's, or
    ///   ``InvalidStateError`` when the delta would make the state invalid; nothing is changed.
    @discardableResult
    public mutating func apply(_ delta: MirrorDelta, revision: UInt64) throws -> ChangeSet {
        guard revision > self.revision else {
            throw StoreError.outOfOrder(current: self.revision, received: revision, delta: delta.summary)
        }
        var changes = ChangeSet()
        switch delta {
        case .upsertCluster(let cluster):
            try check(cluster)
            switch clusters.updateValue(cluster, forKey: cluster.name) {
            case nil: changes.addedClusters.insert(cluster.name)
            case let old? where old != cluster: changes.changedClusters.insert(cluster.name)
            default: break
            }
        case .deleteCluster(let name):
            if case let users = services(referencing: name), !users.isEmpty {
                let listed = users.sorted().prefix(3).map(\.description).joined(separator: ", ")
                throw InvalidStateError(issues: [ValidationIssue(object: "cluster \(name)", field: "",
                    message: "still referenced by \(users.count) service(s) (\(listed)); delete them first")])
            }
            if clusters.removeValue(forKey: name) != nil { changes.removedClusters.insert(name) }
        case .upsertService(let service):
            try check(service)
            let key = service.key
            if let position = services.position(of: key) { slotOwners.removeSlots(ofServiceAt: position, in: services.values) }
            let (position, old) = services.updateValue(service)
            slotOwners.insertSlots(ofServiceAt: position, in: services.values)
            switch old {
            case nil: changes.addedServices.insert(key)
            case let old? where old != service: changes.changedServices.insert(key)
            default: break
            }
        case .deleteService(let key):
            if let position = services.position(of: key) {
                slotOwners.removeSlots(ofServiceAt: position, in: services.values)
                if position != services.count - 1 {
                    slotOwners.moveSlots(ofServiceAt: services.count - 1, to: position, in: services.values)
                }
                services.remove(at: position)
                changes.removedServices.insert(key)
            }
        }
        self.revision = revision
        return changes
    }

    // MARK: validation of single objects against the current state

    private func check(_ cluster: Cluster) throws {
        var validator = StateValidator()
        let object = "cluster \(cluster.name)"
        validator.validateCluster(cluster, object: object)
        var issues = validator.issues
        if cluster.gateway == nil {
            let gatewayUsers = services.values.filter { $0.mode == .gateway && $0.cluster == cluster.name }.map(\.key)
            if !gatewayUsers.isEmpty {
                issues.append(ValidationIssue(object: object, field: "gateway",
                    message: "removing the gateway would strand \(gatewayUsers.count) gateway-mode service(s), e.g. \(gatewayUsers.sorted()[0])"))
            }
        }
        guard issues.isEmpty else { throw InvalidStateError(issues: issues) }
    }

    private func check(_ service: MirroredService) throws {
        var validator = StateValidator()
        let object = "service \(service.key)"
        validator.validateService(service, object: object, clusters: clusters)
        var issues = validator.issues
        for slot in StateValidator.distinctSlots(of: service) {
            if let position = slotOwners.owner(of: slot, in: services.values), case let owner = services.values[position].key, owner != service.key {
                issues.append(ValidationIssue(object: object, field: "ips", message: "\(slot.text) is already used by service \(owner)"))
            }
        }
        guard issues.isEmpty else { throw InvalidStateError(issues: issues) }
    }

    // MARK: helpers

    private static func diff(old: ServiceTable, new: ServiceTable, changes: inout ChangeSet) {
        // A first snapshot (a restart) adds everything: size the set once instead of
        // rehashing 100k keys through a dozen doublings.
        if old.isEmpty {
            changes.addedServices.reserveCapacity(new.count)
            for service in new.values { changes.addedServices.insert(service.key) }
            return
        }
        for service in new.values {
            let key = service.key
            if let previous = old[key] {
                if previous != service { changes.changedServices.insert(key) }
            } else {
                changes.addedServices.insert(key)
            }
        }
        for service in old.values {
            let key = service.key
            if new[key] == nil { changes.removedServices.insert(key) }
        }
    }

    private static func diff<K: Hashable, V: Equatable>(old: [K: V], new: [K: V], added: inout Set<K>, removed: inout Set<K>, changed: inout Set<K>) {
        for (key, value) in new {
            if let previous = old[key] {
                if previous != value { changed.insert(key) }
            } else {
                added.insert(key)
            }
        }
        for key in old.keys where new[key] == nil { removed.insert(key) }
    }
}

/// Why the store refused a delta for reasons other than its content.
public enum StoreError: Error, Equatable, CustomStringConvertible {
    /// Deltas must arrive in revision order; applying an older one would lose a change.
    case outOfOrder(current: UInt64, received: UInt64, delta: String)

    public var description: String {
        switch self {
        case let .outOfOrder(current, received, delta):
            "out-of-order delta (\(delta)) at revision \(received); the store is already at revision \(current)"
        }
    }
}
