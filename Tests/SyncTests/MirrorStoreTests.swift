import Testing
@testable import MirrorModel
@testable import MirrorFeed

@Suite struct MirrorStoreTests {
    func loaded() throws -> MirrorStore {
        var store = MirrorStore()
        try store.applySnapshot(try MirrorState(parsing: validYAML), revision: 10)
        return store
    }

    @Test func firstSnapshotAddsEverything() throws {
        var store = MirrorStore()
        let changes = try store.applySnapshot(try MirrorState(parsing: validYAML), revision: 10)
        #expect(changes.addedClusters == ["paris", "berlin", "flat"])
        #expect(changes.addedServices.map(\.description).sorted() == ["default/bar-paris", "default/db-paris", "default/web-federated"])
        #expect(changes.removedServices.isEmpty && changes.changedServices.isEmpty)
        #expect(store.revision == 10)
        #expect(store.state.services.count == 3)
    }

    @Test func snapshotReportsExactDifferences() throws {
        var store = try loaded()
        var next = store.state
        next.services.removeAll { $0.name == "db" }
        next.services[0].ips = ["10.112.0.99"]
        next.clusters.removeAll { $0.name == "flat" }
        next.clusters[0].gateway?.alive = false
        next.services.append(MirroredService(name: "new", namespace: "ns", cluster: "berlin", mode: .gateway, ips: ["10.1.1.1"], ports: [ServicePort(port: 443)]))
        let changes = try store.applySnapshot(next, revision: 11)
        #expect(changes.removedServices == [ServiceKey(namespace: "default", mirroredName: "db-paris")])
        #expect(changes.addedServices == [ServiceKey(namespace: "ns", mirroredName: "new-berlin")])
        #expect(changes.changedServices.count == 1)
        #expect(changes.removedClusters == ["flat"])
        #expect(changes.changedClusters.count == 1)
        #expect(!changes.clusterDomainChanged)
    }

    @Test func sameSnapshotChangesNothing() throws {
        var store = try loaded()
        let changes = try store.applySnapshot(store.state, revision: 11)
        #expect(changes.isEmpty)
    }

    @Test func invalidSnapshotKeepsLastGoodState() throws {
        var store = try loaded()
        var bad = store.state
        bad.services[0].ports[0].port = 0
        #expect(throws: InvalidStateError.self) { try store.applySnapshot(bad, revision: 11) }
        #expect(store.revision == 10)
        #expect(store.state == (try MirrorState(parsing: validYAML)).sortedForStore())
    }

    @Test func upsertAndDeleteReportOneObject() throws {
        var store = try loaded()
        var db = try #require(store.services[ServiceKey(namespace: "default", mirroredName: "db-paris")])
        db.endpoints.append(Endpoint(ip: "10.20.1.6", hostname: "db-1"))
        let changed = try store.apply(.upsertService(db), revision: 11)
        #expect(changed.changedServices == [db.key] && changed.addedServices.isEmpty)
        let same = try store.apply(.upsertService(db), revision: 12)
        #expect(same.isEmpty, "an identical upsert changes nothing")
        let deleted = try store.apply(.deleteService(db.key), revision: 13)
        #expect(deleted.removedServices == [db.key])
        #expect(store.services[db.key] == nil)
        #expect(store.revision == 13)
    }

    @Test func deltasMustBeInOrder() throws {
        var store = try loaded()
        #expect(throws: StoreError.outOfOrder(current: 10, received: 10, delta: "delete service default/db-paris")) {
            try store.apply(.deleteService(ServiceKey(namespace: "default", mirroredName: "db-paris")), revision: 10)
        }
        #expect(store.services.count == 3)
    }

    @Test func conflictingUpsertIsRejectedWhole() throws {
        var store = try loaded()
        let thief = MirroredService(name: "thief", namespace: "default", cluster: "berlin", mode: .gateway,
                                    ips: ["10.112.0.10"], ports: [ServicePort(port: 80)])
        #expect {
            try store.apply(.upsertService(thief), revision: 11)
        } throws: { error in
            "\(error)".contains("10.112.0.10:80/TCP is already used by service default/bar-paris")
        }
        #expect(store.revision == 10)
        #expect(store.services[thief.key] == nil)
        // Once bar moves off the port, the thief may take it.
        var bar = try #require(store.services[ServiceKey(namespace: "default", mirroredName: "bar-paris")])
        bar.ports[0].port = 81
        try store.apply(.upsertService(bar), revision: 11)
        try store.apply(.upsertService(thief), revision: 12)
        #expect(store.services[thief.key] != nil)
    }

    @Test func upsertServiceOfUnknownClusterIsRejected() throws {
        var store = try loaded()
        let orphan = MirroredService(name: "o", namespace: "default", cluster: "rome", mode: .gateway, ips: ["10.9.9.9"], ports: [ServicePort(port: 1)])
        #expect(throws: InvalidStateError.self) { try store.apply(.upsertService(orphan), revision: 11) }
    }

    @Test func clusterInUseCannotBeDeletedOrLoseItsGateway() throws {
        var store = try loaded()
        #expect(throws: InvalidStateError.self) { try store.apply(.deleteCluster(name: "paris"), revision: 11) }
        #expect(throws: InvalidStateError.self) { try store.apply(.upsertCluster(Cluster(name: "paris")), revision: 11) }
        let unused = try store.apply(.deleteCluster(name: "flat"), revision: 11)
        #expect(unused.removedClusters == ["flat"])
    }

    @Test func dependentsFollowEndpointsAndClusters() throws {
        var store = try loaded()
        #expect(store.services(referencing: "berlin").map(\.mirroredName) == ["web-federated"])
        #expect(Set(store.services(referencing: "paris").map(\.mirroredName)) == ["bar-paris", "db-paris", "web-federated"])
        #expect(Set(store.services(referencingAny: ["paris", "berlin"]).map(\.mirroredName)) == ["bar-paris", "db-paris", "web-federated"])
        #expect(store.services(referencingAny: []).isEmpty)
        #expect(store.serviceCountsByCluster() == ["paris": 3, "berlin": 1])
        var paris = try #require(store.clusters["paris"])
        paris.gateway?.alive = false
        let changes = try store.apply(.upsertCluster(paris), revision: 11)
        #expect(changes.changedClusters == ["paris"])
        try store.apply(.deleteService(ServiceKey(namespace: "default", mirroredName: "web-federated")), revision: 12)
        #expect(store.services(referencing: "berlin").isEmpty)
    }

    @Test func mergingChangeSetsCoalescesBursts() {
        var first = ChangeSet()
        first.addedServices = [ServiceKey(namespace: "a", mirroredName: "x-p")]
        first.removedServices = [ServiceKey(namespace: "a", mirroredName: "y-p")]
        var second = ChangeSet()
        second.removedServices = [ServiceKey(namespace: "a", mirroredName: "x-p")]
        second.addedServices = [ServiceKey(namespace: "a", mirroredName: "y-p")]
        second.changedServices = [ServiceKey(namespace: "a", mirroredName: "z-p")]
        first.merge(second)
        #expect(first.addedServices.isEmpty, "added then removed cancels out")
        #expect(first.removedServices.isEmpty)
        #expect(first.changedServices == [ServiceKey(namespace: "a", mirroredName: "y-p"), ServiceKey(namespace: "a", mirroredName: "z-p")])
    }
}

extension MirrorState {
    /// The order the store returns: clusters, services and policies sorted by name.
    func sortedForStore() -> MirrorState {
        MirrorState(clusterDomain: clusterDomain, clusters: clusters.sorted { $0.name < $1.name }, services: services.sorted { $0.key < $1.key },
                    policies: policies.sorted { $0.key < $1.key })
    }
}
