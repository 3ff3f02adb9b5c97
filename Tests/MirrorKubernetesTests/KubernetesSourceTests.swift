import Foundation
import MirrorModel
import Testing
@testable import MirrorKubernetes

/// `feed --source kubernetes` against two emulated clusters: Links and credentials in the
/// local one, exported Services in the remote one.
@Suite(.serialized)
struct KubernetesSourceTests {
    @Test func exportedServiceIsMirroredWithALocallyAllocatedClusterIPAndRemovedWhenUnexported() async throws {
        try await SourceLab.with { lab in
            try await lab.addCredentials("paris", server: lab.remote)
            try await lab.addLink("paris")
            try await lab.remote.create(SourceLab.servicesPath("default"), SourceLab.service("bar"))
            let feed = try lab.start()

            #expect(await eventually { feed.service("default", "bar-paris") != nil })
            let mirror = try #require(try await lab.localService("default", "bar-paris"))
            let labels = mirror.metadata.labels ?? [:]
            #expect(labels["service.kubernetes.io/service-proxy-name"] == "mirror-agent")
            #expect(labels["mirror.linkerd.io/mirrored-service"] == "true")
            #expect(labels["mirror.linkerd.io/cluster-name"] == "paris")
            #expect(mirror.spec.ports?.map(\.port) == [80])
            let clusterIP = try #require(mirror.spec.clusterIP)
            #expect(clusterIP.hasPrefix("10.96."))
            let published = try #require(feed.service("default", "bar-paris"))
            #expect(published.ips == [clusterIP])
            #expect(published.cluster == "paris")
            #expect(feed.state?.clusters.first?.gateway?.addresses == ["192.0.2.10"])
            #expect(feed.link("paris")?.connected == true)
            #expect(feed.link("paris")?.servicesMirrored == 1)

            // A second port on the remote side reaches the mirror (same ClusterIP).
            try await lab.remote.patch(SourceLab.servicesPath("default") + "/bar", ["spec": ["ports": [
                ["name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080],
                ["name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": 9090]]]])
            #expect(await eventually { feed.service("default", "bar-paris")?.ports.count == 2 })
            #expect(try await lab.localService("default", "bar-paris")?.spec.ports?.count == 2)
            #expect(try await lab.localService("default", "bar-paris")?.spec.clusterIP == clusterIP)

            // Unexported: the mirror and the published service go.
            try await lab.remote.patch(SourceLab.servicesPath("default") + "/bar",
                                       ["metadata": ["labels": ["mirror.linkerd.io/exported": NSNull()]]])
            #expect(await eventually { feed.service("default", "bar-paris") == nil })
            #expect(await eventually { (try? await lab.localService("default", "bar-paris")) == .some(nil) })

            // Exported again, then deleted remotely.
            try await lab.remote.patch(SourceLab.servicesPath("default") + "/bar",
                                       ["metadata": ["labels": ["mirror.linkerd.io/exported": "true"]]])
            #expect(await eventually { feed.service("default", "bar-paris") != nil })
            try await lab.remote.delete(SourceLab.servicesPath("default") + "/bar")
            #expect(await eventually { (try? await lab.localService("default", "bar-paris")) == .some(nil) })
            #expect(feed.service("default", "bar-paris") == nil)
            await feed.stop()
        }
    }

    @Test func remoteDiscoveryPublishesReadyPodsFromEndpointSlices() async throws {
        try await SourceLab.with { lab in
            try await lab.addCredentials("paris", server: lab.remote)
            try await lab.addLink("paris")
            try await lab.remote.create(SourceLab.servicesPath("shop"), SourceLab.service(
                "cart", namespace: "shop", labels: ["mirror.linkerd.io/exported": "remote-discovery"]))
            try await lab.remote.create("/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices", [
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                "metadata": ["name": "cart-1", "namespace": "shop", "labels": ["kubernetes.io/service-name": "cart"]],
                "ports": [["name": "http", "protocol": "TCP", "port": 8080]],
                "endpoints": [["addresses": ["10.20.0.5"], "conditions": ["ready": true]],
                              ["addresses": ["10.20.0.6"], "conditions": ["ready": false]]],
            ])
            let feed = try lab.start()
            #expect(await eventually { feed.service("shop", "cart-paris") != nil })
            let cart = try #require(feed.service("shop", "cart-paris"))
            #expect(cart.mode == .remoteDiscovery)
            #expect(cart.ports.first?.targetPort == 8080)
            #expect(cart.endpoints.filter(\.ready).map(\.ip) == ["10.20.0.5"])
            await feed.stop()
        }
    }

    @Test func unreachableRemoteKeepsMirrorsAndIsShownStale() async throws {
        try await SourceLab.with { lab in
            try await lab.addCredentials("paris", server: lab.remote)
            try await lab.addLink("paris")
            try await lab.remote.create(SourceLab.servicesPath("default"), SourceLab.service("bar"))
            let feed = try lab.start()
            #expect(await eventually { feed.service("default", "bar-paris")?.ips.isEmpty == false })
            let revisions = feed.published.count

            await lab.remote.kill()
            #expect(await eventually(timeout: .seconds(15)) { feed.link("paris")?.stale == true })
            let status = try #require(feed.link("paris"))
            #expect(status.connected == false)
            #expect(status.lastError != nil)
            // Two resync-worthy seconds later nothing was deleted or republished.
            try await Task.sleep(for: .seconds(2))
            #expect(try await lab.localService("default", "bar-paris") != nil)
            #expect(feed.service("default", "bar-paris") != nil)
            #expect(feed.published.count == revisions)
            await feed.stop()
        }
    }

    @Test func restartWhileTheRemoteIsDownDeletesNoMirror() async throws {
        try await SourceLab.with { lab in
            try await lab.addCredentials("paris", server: lab.remote)
            try await lab.addLink("paris")
            try await lab.remote.create(SourceLab.servicesPath("default"), SourceLab.service("bar"))
            let first = try lab.start()
            #expect(await eventually { first.service("default", "bar-paris")?.ips.isEmpty == false })
            await first.stop()

            await lab.remote.kill()
            let second = try lab.start(identity: "feed-b") { $0.initialSyncTimeout = .milliseconds(500) }
            // Past the initial wait it publishes without paris, and keeps paris's mirror.
            #expect(await eventually { !second.published.isEmpty })
            try await Task.sleep(for: .seconds(3))
            #expect(second.source.status.leader.isLeader)
            #expect(try await lab.localService("default", "bar-paris") != nil)
            #expect(second.link("paris")?.synced == false)
            await second.stop()
        }
    }

    @Test func nameClashAndMissingNamespaceAreReportedAndNothingIsTouched() async throws {
        try await SourceLab.with(namespaces: ["mirror-agent", "default"]) { lab in
            try await lab.local.create(SourceLab.servicesPath("default"), SourceLab.service("bar-paris", labels: ["app": "mine"]))
            try await lab.addCredentials("paris", server: lab.remote)
            try await lab.addLink("paris")
            try await lab.remote.create(SourceLab.servicesPath("default"), SourceLab.service("bar"))
            try await lab.remote.create(SourceLab.servicesPath("nowhere"), SourceLab.service("baz", namespace: "nowhere"))
            try await lab.remote.create(SourceLab.servicesPath("default"), SourceLab.service("ok"))
            let feed = try lab.start()

            #expect(await eventually { feed.service("default", "ok-paris") != nil })
            #expect(await eventually { feed.source.status.writeProblems.count == 2 })
            let problems = feed.source.status.writeProblems
            #expect(problems["default/bar-paris"]?.contains("without mirror-agent's labels") == true)
            #expect(problems["nowhere/baz-nowhere"] == nil)
            #expect(problems["nowhere/baz-paris"]?.contains("namespace nowhere does not exist") == true)
            let theirs = try #require(try await lab.localService("default", "bar-paris"))
            #expect(theirs.metadata.labels == ["app": "mine"])
            #expect(feed.service("default", "bar-paris") == nil)
            await feed.stop()
        }
    }

    @Test func missingCredentialsSecretIsReportedThenFollowed() async throws {
        try await SourceLab.with { lab in
            try await lab.addLink("paris")
            try await lab.remote.create(SourceLab.servicesPath("default"), SourceLab.service("bar"))
            let feed = try lab.start()
            #expect(await eventually { feed.link("paris")?.lastError?.contains("cluster-credentials-paris: not found") == true })
            #expect(feed.link("paris")?.synced == false)
            try await lab.addCredentials("paris", server: lab.remote)
            #expect(await eventually(timeout: .seconds(15)) { feed.service("default", "bar-paris")?.ips.isEmpty == false })
            await feed.stop()
        }
    }

    @Test func linkAddedAndDeletedAtRunTime() async throws {
        try await SourceLab.with { lab in
            try await withKMock { berlin in
                try await lab.addCredentials("paris", server: lab.remote)
                try await lab.addLink("paris")
                try await lab.remote.create(SourceLab.servicesPath("default"), SourceLab.service("bar"))
                try await berlin.create(SourceLab.servicesPath("default"), SourceLab.service("bar"))
                let feed = try lab.start()
                #expect(await eventually { feed.service("default", "bar-paris") != nil })

                try await lab.addCredentials("berlin", server: berlin)
                try await lab.addLink("berlin", gateway: "192.0.2.20")
                #expect(await eventually { feed.service("default", "bar-berlin") != nil })
                #expect(try await lab.localService("default", "bar-berlin") != nil)

                try await lab.local.delete(SourceLab.linksPath + "/berlin")
                #expect(await eventually { feed.service("default", "bar-berlin") == nil })
                #expect(await eventually { (try? await lab.localService("default", "bar-berlin")) == .some(nil) })
                #expect(feed.state?.clusters.map(\.name) == ["paris"])
                #expect(try await lab.localService("default", "bar-paris") != nil)
                await feed.stop()
            }
        }
    }

    @Test func oneReplicaWritesAndTheOtherTakesOverWhenItStops() async throws {
        try await SourceLab.with { lab in
            try await lab.addCredentials("paris", server: lab.remote)
            try await lab.addLink("paris")
            try await lab.remote.create(SourceLab.servicesPath("default"), SourceLab.service("bar"))
            let a = try lab.start(identity: "feed-a")
            #expect(await eventually { a.source.status.leader.isLeader })
            let b = try lab.start(identity: "feed-b")
            #expect(await eventually { b.service("default", "bar-paris")?.ips.isEmpty == false })
            #expect(b.source.status.leader.isLeader == false)
            #expect(b.source.status.leader.holder == "feed-a")
            // Both publish the same state (each from its own watches, so once both have heard
            // of the ClusterIP: a publishes it one coalescing window after its own informer).
            #expect(await eventually { a.service("default", "bar-paris")?.ips.isEmpty == false })
            #expect(a.state?.services == b.state?.services)

            await a.stop()
            #expect(await eventually(timeout: .seconds(5)) { b.source.status.leader.isLeader })
            try await lab.remote.create(SourceLab.servicesPath("default"), SourceLab.service("baz"))
            #expect(await eventually { (try? await lab.localService("default", "baz-paris")) != nil })
            #expect(await eventually { b.service("default", "baz-paris")?.ips.isEmpty == false })
            await b.stop()
        }
    }

    @Test func orphanMirrorOfAnUnknownClusterIsCollectedAtStart() async throws {
        try await SourceLab.with { lab in
            var orphan = SourceLab.service("old-tokyo", labels: [
                "service.kubernetes.io/service-proxy-name": "mirror-agent", "mirror.linkerd.io/mirrored-service": "true",
                "mirror.linkerd.io/cluster-name": "tokyo"])
            orphan["spec"] = ["type": "ClusterIP", "ports": [["port": 80]]]
            try await lab.local.create(SourceLab.servicesPath("default"), orphan)
            try await lab.local.create(SourceLab.servicesPath("default"), SourceLab.service("unrelated", labels: ["app": "x"]))
            let feed = try lab.start()
            #expect(await eventually { (try? await lab.localService("default", "old-tokyo")) == .some(nil) })
            #expect(try await lab.localService("default", "unrelated") != nil)
            #expect(feed.source.status.deleted == 1)
            await feed.stop()
        }
    }

    @Test func writesKeepToTheConfiguredRate() async throws {
        try await SourceLab.with { lab in
            try await lab.addCredentials("paris", server: lab.remote)
            try await lab.addLink("paris")
            for index in 0..<30 {
                try await lab.remote.create(SourceLab.servicesPath("default"), SourceLab.service("svc\(index)"))
            }
            let started = ContinuousClock.now
            let feed = try lab.start { options in
                options.writeQPS = 20
                options.writeBurst = 10
            }
            #expect(await eventually(timeout: .seconds(15)) { feed.source.status.created == 30 })
            let elapsed = ContinuousClock.now - started
            // 10 at once, then 20 more at 20 a second: at least a second.
            #expect(elapsed >= .milliseconds(950), "30 creates took \(elapsed)")
            #expect(await eventually { feed.state?.services.count == 30 })
            await feed.stop()
        }
    }
}
