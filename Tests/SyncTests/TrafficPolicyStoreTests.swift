import Testing
@testable import MirrorModel
@testable import MirrorFeed

/// The store with traffic policies: snapshots and deltas report them in the ``ChangeSet``,
/// and every delta is checked against the clusters and services as they are after it (a
/// mirror a policy names cannot go away or lose its port; a policy's ClusterIP is nobody
/// else's).
@Suite struct TrafficPolicyStoreTests {
    let key = PolicyKey(namespace: "default", name: "svc-0")
    let paris0 = ServiceKey(namespace: "default", mirroredName: "svc-0-paris")
    let berlin0 = ServiceKey(namespace: "default", mirroredName: "svc-0-berlin")

    func loaded() throws -> MirrorStore {
        var store = MirrorStore()
        try store.applySnapshot(PolicyFixtures.state(), revision: 10)
        return store
    }

    /// Applies `delta` expecting a refusal with exactly `messages`; the store must not change.
    func expectRefused(_ delta: MirrorDelta, on store: inout MirrorStore, _ messages: [String],
                       sourceLocation: SourceLocation = #_sourceLocation) {
        let before = store.state, revision = store.revision
        do {
            try store.apply(delta, revision: store.revision + 1)
            Issue.record("\(delta.summary) was accepted", sourceLocation: sourceLocation)
        } catch let error as InvalidStateError {
            #expect(error.issues.map(\.description) == messages, sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
        #expect(store.state == before && store.revision == revision, "a refused delta changes nothing", sourceLocation: sourceLocation)
    }

    @Test func aSnapshotAddsAndIndexesPolicies() throws {
        var store = MirrorStore()
        let changes = try store.applySnapshot(PolicyFixtures.state(), revision: 10)
        #expect(changes.addedPolicies == [key] && changes.changedPolicies.isEmpty && changes.removedPolicies.isEmpty)
        #expect(store.policies == [key: PolicyFixtures.policy()])
        #expect(store.state == PolicyFixtures.state().normalized)
        #expect(store.policies(referencing: paris0) == [key] && store.policies(referencing: berlin0) == [key])
        #expect(store.policies(referencing: ServiceKey(namespace: "default", mirroredName: "svc-1-paris")).isEmpty)
        #expect(store.policies(referencingAny: store.services(referencing: "berlin")) == [key],
                "a changed cluster reaches the policies through its services")
    }

    @Test func snapshotsReportPolicyDifferences() throws {
        var store = try loaded()
        var next = store.state
        next.policies[0].localReady = false
        next.policies.append(PolicyFixtures.policy("svc-7", ip: "10.96.0.7"))
        let changes = try store.applySnapshot(next, revision: 11)
        #expect(changes.changedPolicies == [key])
        #expect(changes.addedPolicies == [PolicyKey(namespace: "default", name: "svc-7")])
        #expect(changes.addedServices.isEmpty && changes.changedServices.isEmpty && changes.addedClusters.isEmpty)
        #expect(!changes.isEmpty)
        next.policies.removeAll { $0.name == "svc-7" }
        let removed = try store.applySnapshot(next, revision: 12)
        #expect(removed.removedPolicies == [PolicyKey(namespace: "default", name: "svc-7")] && removed.changedPolicies.isEmpty)
        #expect(try store.applySnapshot(next, revision: 13).isEmpty)
        #expect(store.policies(referencing: paris0) == [key], "the index follows snapshots")
    }

    @Test func anInvalidSnapshotKeepsTheLastGoodPolicies() throws {
        var store = try loaded()
        var bad = store.state
        bad.services.removeAll { $0.key == berlin0 }
        #expect(throws: InvalidStateError.self) { try store.applySnapshot(bad, revision: 11) }
        #expect(store.revision == 10 && store.state == PolicyFixtures.state().normalized)
    }

    @Test func policyDeltasReportOnePolicy() throws {
        var store = try loaded()
        var policy = PolicyFixtures.policy(localReady: false)
        #expect(try store.apply(.upsertPolicy(policy), revision: 11).changedPolicies == [key])
        #expect(store.policies[key]?.localReady == false)
        #expect(try store.apply(.upsertPolicy(policy), revision: 12).isEmpty, "the same policy again changes nothing")
        #expect(store.revision == 12)
        policy.name = "svc-1"
        policy.ips = ["10.96.0.2"]
        let added = try store.apply(.upsertPolicy(policy), revision: 13)
        #expect(added.addedPolicies == [policy.key] && added.changedPolicies.isEmpty)
        #expect(store.policies(referencing: paris0) == [key, policy.key])
        let removed = try store.apply(.deletePolicy(policy.key), revision: 14)
        #expect(removed.removedPolicies == [policy.key])
        #expect(store.policies(referencing: paris0) == [key])
        #expect(try store.apply(.deletePolicy(PolicyKey(namespace: "default", name: "nothing")), revision: 15).isEmpty)
        #expect(throws: StoreError.self) { try store.apply(.deletePolicy(key), revision: 15) }
    }

    @Test func aPolicyIsCheckedAgainstTheServicesAsTheyAre() throws {
        var store = try loaded()
        var unknown = PolicyFixtures.policy()
        unknown.backends.append(PolicyBackend(mirror: "svc-9-paris", weight: 1))
        expectRefused(.upsertPolicy(unknown), on: &store, ["policy default/svc-0: backends[2].mirror: svc-9-paris is not a mirrored service in default"])

        var otherPort = PolicyFixtures.policy()
        otherPort.ports.append(PolicyPort(protocol: .udp, port: 80))
        expectRefused(.upsertPolicy(otherPort), on: &store, [
            "policy default/svc-0: backends[1].mirror: svc-0-paris has no port 80/UDP (a mirror must carry every port of the policy)",
            "policy default/svc-0: failover[0]: svc-0-paris has no port 80/UDP (a mirror must carry every port of the policy)",
            "policy default/svc-0: failover[1]: svc-0-berlin has no port 80/UDP (a mirror must carry every port of the policy)",
        ])

        var onAMirror = PolicyFixtures.policy("svc-1", ip: "10.112.0.2")
        onAMirror.ips.insert("10.96.0.2", at: 0)
        expectRefused(.upsertPolicy(onAMirror), on: &store,
                      ["policy default/svc-1: ips[1]: 10.112.0.2 is the ClusterIP of service default/svc-1-paris; a policy is for a local service"])

        expectRefused(.upsertPolicy(PolicyFixtures.policy("svc-1", ip: "10.96.0.1")), on: &store,
                      ["policy default/svc-1: ips[0]: 10.96.0.1 is already used by traffic policy default/svc-0"])

        var invalid = PolicyFixtures.policy()
        invalid.backends = [PolicyBackend(weight: 0), PolicyBackend(weight: 2000)]
        expectRefused(.upsertPolicy(invalid), on: &store, [
            "policy default/svc-0: backends[1].weight: must be between 0 and 1000, got 2000",
            "policy default/svc-0: backends[1].local: only one backend can be the local service",
        ])
    }

    @Test func aMirrorAPolicyNamesStaysWhatThePolicyNeeds() throws {
        var store = try loaded()
        expectRefused(.deleteService(paris0), on: &store,
                      ["service default/svc-0-paris: still referenced by 1 traffic policy(ies) (default/svc-0); change or delete them first"])

        var berlin = try #require(store.services[berlin0])
        berlin.ports = [ServicePort(name: "http", port: 81)]
        expectRefused(.upsertService(berlin), on: &store,
                      ["service default/svc-0-berlin: ports: traffic policy default/svc-0 sends 80/TCP to it; change the policy first"])
        berlin.ports.append(ServicePort(name: "alt", port: 80))
        try store.apply(.upsertService(berlin), revision: 11)  // the policy's port kept: fine

        var squatter = FeedFixtures.service(5)
        squatter.ips = ["10.96.0.1"]
        expectRefused(.upsertService(squatter), on: &store,
                      ["service default/svc-5-paris: ips[0]: 10.96.0.1 is the ClusterIP of the local service of traffic policy default/svc-0"])

        // Once the policy stops naming berlin, berlin may go.
        var policy = PolicyFixtures.policy()
        policy.failover = ["svc-0-paris"]
        try store.apply(.upsertPolicy(policy), revision: 12)
        #expect(store.policies(referencing: berlin0).isEmpty)
        #expect(try store.apply(.deleteService(berlin0), revision: 13).removedServices == [berlin0])
        // Once the policy is gone, its mirror and its address are free.
        try store.apply(.deletePolicy(key), revision: 14)
        try store.apply(.upsertService(squatter), revision: 15)
        #expect(try store.apply(.deleteService(paris0), revision: 16).removedServices == [paris0])
    }

    @Test func aPolicyMovingToANewAddressFreesTheOldOne() throws {
        var store = try loaded()
        var policy = PolicyFixtures.policy()
        policy.ips = ["10.96.0.2", "fd00:96::1"]
        try store.apply(.upsertPolicy(policy), revision: 11)
        var service = FeedFixtures.service(5)
        service.ips = ["10.96.0.1"]
        try store.apply(.upsertService(service), revision: 12)
        // The same address spelled another way is the same address.
        service.ips = ["10.96.0.1", "FD00:96:0::0001"]
        expectRefused(.upsertService(service), on: &store,
                      ["service default/svc-5-paris: ips[1]: FD00:96:0::0001 is the ClusterIP of the local service of traffic policy default/svc-0"])
    }

    @Test func changeSetsMergePolicies() {
        let a = PolicyKey(namespace: "n", name: "a"), b = PolicyKey(namespace: "n", name: "b"), c = PolicyKey(namespace: "n", name: "c")
        var first = ChangeSet()
        first.addedPolicies = [a]
        first.removedPolicies = [b]
        #expect(!first.isEmpty)
        var second = ChangeSet()
        second.removedPolicies = [a]
        second.addedPolicies = [b]
        second.changedPolicies = [c]
        first.merge(second)
        #expect(first.addedPolicies.isEmpty, "added then removed cancels out")
        #expect(first.removedPolicies.isEmpty)
        #expect(first.changedPolicies == [b, c], "removed then added is a change")
        var onlyChanged = ChangeSet()
        onlyChanged.changedPolicies = [c]
        #expect(!onlyChanged.isEmpty)
    }
}
