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
    /// Traffic policies of local services.
    public private(set) var policies: [PolicyKey: TrafficPolicy] = [:]
    /// Which policy has each ClusterIP: a mirrored service or another policy may not take it.
    private var policyAddresses: [IPAddressValue: PolicyKey] = [:]
    /// The policies that send traffic to each mirrored service (as a backend or a failover
    /// mirror): such a service may not be deleted or lose a port they use.
    private var policyUsers: [ServiceKey: Set<PolicyKey>] = [:]

    public init() {}

    /// The whole state, clusters, services and policies sorted by name, as a feed snapshot
    /// carries it.
    ///
    /// Each service's key is built once, not at every comparison of the sort (building one
    /// allocates for names over 15 bytes; 100k services take 3.4M comparisons).
    public var state: MirrorState {
        let keys = services.values.map(\.key)
        let order = keys.indices.sorted { keys[$0] < keys[$1] }
        return MirrorState(
            clusterDomain: clusterDomain,
            clusters: clusters.values.sorted { $0.name < $1.name },
            services: order.map { services.values[$0] },
            policies: policies.values.sorted { $0.key < $1.key }
        )
    }

    /// The policies that send traffic to `service`, as a backend or a failover mirror.
    public func policies(referencing service: ServiceKey) -> Set<PolicyKey> {
        policyUsers[service] ?? []
    }

    /// The policies that send traffic to any of `services` (e.g. the changed services of a
    /// ``ChangeSet``, and those of a changed cluster): what a data path re-translates.
    public func policies(referencingAny services: Set<ServiceKey>) -> Set<PolicyKey> {
        guard !policyUsers.isEmpty else { return [] }
        var keys = Set<PolicyKey>()
        for service in services { if let users = policyUsers[service] { keys.formUnion(users) } }
        return keys
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
        let newPolicies = Dictionary(snapshot.policies.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        Self.diff(old: policies, new: newPolicies, added: &changes.addedPolicies, removed: &changes.removedPolicies, changed: &changes.changedPolicies)
        clusterDomain = snapshot.clusterDomain
        clusters = newClusters
        services = newServices
        slotOwners = ServiceSlotIndex()
        slotOwners.reserveCapacity(newServices.values.reduce(0) { $0 + $1.ips.count * $1.ports.count }, in: newServices.values)
        for position in newServices.values.indices { slotOwners.insertSlots(ofServiceAt: position, in: newServices.values) }
        policies = newPolicies
        policyAddresses = [:]
        policyUsers = [:]
        for policy in newPolicies.values { index(policy) }
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
            if let users = policyUsers[key], !users.isEmpty {
                let listed = users.sorted().prefix(3).map(\.description).joined(separator: ", ")
                throw InvalidStateError(issues: [ValidationIssue(object: "service \(key)", field: "",
                    message: "still referenced by \(users.count) traffic policy(ies) (\(listed)); change or delete them first")])
            }
            if let position = services.position(of: key) {
                slotOwners.removeSlots(ofServiceAt: position, in: services.values)
                if position != services.count - 1 {
                    slotOwners.moveSlots(ofServiceAt: services.count - 1, to: position, in: services.values)
                }
                services.remove(at: position)
                changes.removedServices.insert(key)
            }
        case .upsertPolicy(let policy):
            try check(policy)
            let key = policy.key
            let old = policies.updateValue(policy, forKey: key)
            if let old { unindex(old) }
            index(policy)
            switch old {
            case nil: changes.addedPolicies.insert(key)
            case let old? where old != policy: changes.changedPolicies.insert(key)
            default: break
            }
        case .deletePolicy(let key):
            if let old = policies.removeValue(forKey: key) {
                unindex(old)
                changes.removedPolicies.insert(key)
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
        if !policyAddresses.isEmpty {
            for (i, ip) in service.ips.enumerated() {
                if let value = IPAddressValue(ip), let owner = policyAddresses[value] {
                    issues.append(ValidationIssue(object: object, field: "ips[\(i)]",
                        message: "\(ip) is the ClusterIP of the local service of traffic policy \(owner)"))
                }
            }
        }
        for key in (policyUsers[service.key] ?? []).sorted() {
            guard let policy = policies[key] else { continue }
            let missing = StateValidator.portsMissing(from: service, for: policy)
            if !missing.isEmpty {
                issues.append(ValidationIssue(object: object, field: "ports",
                    message: "traffic policy \(key) sends \(missing.joined(separator: ", ")) to it; change the policy first"))
            }
        }
        guard issues.isEmpty else { throw InvalidStateError(issues: issues) }
    }

    /// A policy against the current state: on its own (its mirrors must exist with its
    /// ports), and its ClusterIPs neither another policy's nor a mirrored service's.
    private func check(_ policy: TrafficPolicy) throws {
        var validator = StateValidator()
        let object = "policy \(policy.key)"
        validator.validatePolicy(policy, object: { object }, service: { services[$0] })
        var issues = validator.issues
        // Addresses the policy already had are known to be free of mirrored services (a
        // service upsert checks them): only new ones need the scan of every service.
        let held = Set((policies[policy.key]?.ips ?? []).compactMap(IPAddressValue.init))
        var fresh: [IPAddressValue: Int] = [:]
        for (i, ip) in policy.ips.enumerated() {
            guard let value = IPAddressValue(ip) else { continue }
            if let owner = policyAddresses[value], owner != policy.key {
                issues.append(ValidationIssue(object: object, field: "ips[\(i)]", message: "\(ip) is already used by traffic policy \(owner)"))
            } else if !held.contains(value), fresh[value] == nil {
                fresh[value] = i
            }
        }
        if !fresh.isEmpty {
            for service in services.values {
                for ip in service.ips {
                    guard let value = IPAddressValue(ip), let i = fresh.removeValue(forKey: value) else { continue }
                    issues.append(ValidationIssue(object: object, field: "ips[\(i)]",
                        message: StateValidator.mirroredAddressMessage(policy.ips[i], service: "service \(service.key)")))
                }
                if fresh.isEmpty { break }
            }
        }
        guard issues.isEmpty else { throw InvalidStateError(issues: issues) }
    }

    private mutating func index(_ policy: TrafficPolicy) {
        for ip in policy.ips {
            if let value = IPAddressValue(ip) { policyAddresses[value] = policy.key }
        }
        for service in policy.referencedServices { policyUsers[service, default: []].insert(policy.key) }
    }

    private mutating func unindex(_ policy: TrafficPolicy) {
        for ip in policy.ips {
            if let value = IPAddressValue(ip), policyAddresses[value] == policy.key { policyAddresses[value] = nil }
        }
        for service in policy.referencedServices {
            policyUsers[service]?.remove(policy.key)
            if policyUsers[service]?.isEmpty == true { policyUsers[service] = nil }
        }
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
