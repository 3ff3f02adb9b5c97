import Foundation
import MirrorModel
import Testing
@testable import MirrorKubernetes

/// Traffic policies from the local cluster's SMI TrafficSplits, through the Kubernetes
/// source against emulated clusters: apex Services, TrafficSplits and EndpointSlices in the
/// local one, the exported Services they split to in the remote ones.
@Suite(.serialized)
struct TrafficSplitSourceTests {
    static let failoverLabels = [TrafficSplit.failoverControlledByLabel: TrafficSplit.failoverControllerName]

    /// paris linked, exporting `services` (default namespace).
    func linkParis(_ lab: SourceLab, exporting services: [String] = ["bar"]) async throws {
        try await lab.addCredentials("paris", server: lab.remote)
        try await lab.addLink("paris")
        for name in services {
            try await lab.remote.create(SourceLab.servicesPath("default"), SourceLab.service(name))
        }
    }

    @Test func ninetyTenSplitIsPublishedOnTheLocalClusterIPAndFollowsLocalReadiness() async throws {
        try await SourceLab.with { lab in
            try await linkParis(lab, exporting: ["bar", "baz"])
            try await lab.addLocalService("bar", clusterIP: "10.96.200.10")
            try await lab.addLocalSlice("bar", ready: [true, false])
            try await lab.addTrafficSplit("bar-split", apex: "bar", backends: [("bar", 90), ("bar-paris", 10)])
            let feed = try lab.startPolicyFeed()

            #expect(await eventually { feed.policy("default", "bar") != nil })
            let policy = try #require(feed.policy("default", "bar"))
            #expect(policy.ips == ["10.96.200.10"])
            #expect(policy.ports == [PolicyPort(name: "http", protocol: .tcp, port: 80)])
            #expect(policy.backends == [PolicyBackend(mirror: nil, weight: 900), PolicyBackend(mirror: "bar-paris", weight: 100)])
            #expect(policy.failover.isEmpty)
            #expect(policy.localReady)
            #expect(feed.service("default", "bar-paris")?.ips.isEmpty == false)
            #expect(feed.source.status.policies == 1)
            #expect(feed.source.status.trafficSplits == .served)

            // The local endpoints go unready: the very next update says so, and back.
            var before = feed.published.count
            try await lab.setLocalSlice("bar", ready: [false, false])
            #expect(await eventually { feed.policy("default", "bar")?.localReady == false })
            #expect(feed.policyHistory("default", "bar", from: before).first??.localReady == false)
            before = feed.published.count
            try await lab.setLocalSlice("bar", ready: [false, true])
            #expect(await eventually { feed.policy("default", "bar")?.localReady == true })
            #expect(feed.policyHistory("default", "bar", from: before).first??.localReady == true)

            // A split of another apex at run time: published once its slices are listed, so
            // never with a readiness that was not known.
            try await lab.addLocalService("baz", clusterIP: "10.96.200.11")
            try await lab.addLocalSlice("baz", ready: [true])
            before = feed.published.count
            try await lab.addTrafficSplit("baz-split", apex: "baz", backends: [("baz", 1), ("baz-paris", 3)])
            #expect(await eventually { feed.policy("default", "baz") != nil })
            let history = feed.policyHistory("default", "baz", from: before).compactMap { $0 }
            #expect(!history.isEmpty && history.allSatisfy(\.localReady), "\(history)")
            #expect(feed.policy("default", "baz")?.backends.map(\.weight) == [250, 750])
            // Only the apex services' slices are watched.
            let sliceWatches = try await lab.local.requests().filter { $0.path == "/apis/discovery.k8s.io/v1/endpointslices" }
            #expect(!sliceWatches.isEmpty)
            #expect(sliceWatches.allSatisfy { $0.params["labelSelector"]?.hasPrefix("kubernetes.io/service-name in (") == true },
                    "\(sliceWatches.map(\.params))")
            #expect(sliceWatches.last?.params["labelSelector"] == "kubernetes.io/service-name in (bar,baz)")

            // The split deleted: the policy goes, the mirrors stay.
            try await lab.local.delete(SourceLab.trafficSplitsPath("default") + "/bar-split")
            #expect(await eventually { feed.policy("default", "bar") == nil })
            #expect(feed.service("default", "bar-paris") != nil && feed.policy("default", "baz") != nil)
            await feed.stop()
        }
    }

    @Test func linkerdFailoverSplitGivesTheFailoverListAndAllTheWeightLocally() async throws {
        try await SourceLab.with { lab in
            try await withKMock { berlin in
                try await linkParis(lab)
                try await lab.addCredentials("berlin", server: berlin)
                try await lab.addLink("berlin", gateway: "192.0.2.20")
                try await berlin.create(SourceLab.servicesPath("default"), SourceLab.service("bar"))
                try await lab.addLocalService("bar", clusterIP: "10.96.200.10")
                try await lab.addLocalSlice("bar", ready: [true])
                // As in linkerd-failover's README: primary ready, all its weight on it.
                try await lab.addTrafficSplit("bar", apex: "bar", backends: [("bar", 1), ("bar-berlin", 0), ("bar-paris", 0)],
                                              labels: Self.failoverLabels,
                                              annotations: [TrafficSplit.failoverPrimaryServiceAnnotation: "bar"])
                let feed = try lab.startPolicyFeed()

                #expect(await eventually { feed.policy("default", "bar")?.failover.count == 2 })
                let policy = try #require(feed.policy("default", "bar"))
                #expect(policy.failover == ["bar-berlin", "bar-paris"])
                #expect(policy.backends == [PolicyBackend(mirror: nil, weight: 1000), PolicyBackend(mirror: "bar-berlin", weight: 0),
                                            PolicyBackend(mirror: "bar-paris", weight: 0)])
                #expect(policy.localReady)

                // The local pods go; Linkerd's operator (if it still runs) shifts the weights to
                // the secondaries. The agent fails over by readiness; the weights are not read.
                try await lab.setLocalSlice("bar", ready: [false])
                try await lab.local.patch(SourceLab.trafficSplitsPath("default") + "/bar", ["spec": ["backends": [
                    ["service": "bar", "weight": 0], ["service": "bar-berlin", "weight": 1], ["service": "bar-paris", "weight": 1]]]])
                #expect(await eventually { feed.policy("default", "bar")?.localReady == false })
                try await Task.sleep(for: .milliseconds(200))
                #expect(feed.policy("default", "bar")?.backends.first == PolicyBackend(mirror: nil, weight: 1000))
                #expect(feed.policy("default", "bar")?.failover == ["bar-berlin", "bar-paris"])
                await feed.stop()
            }
        }
    }

    @Test func unusableSplitsAreSkippedWithTheirReasonAndTheOthersPublished() async throws {
        try await SourceLab.with { lab in
            try await linkParis(lab, exporting: ["bar", "baz", "qux"])
            try await lab.addLocalService("bar", clusterIP: "10.96.200.10")
            try await lab.addLocalService("baz", clusterIP: "10.96.200.11")
            try await lab.addLocalSlice("baz", ready: [true])
            try await lab.addTrafficSplit("bar-split", apex: "bar", backends: [("bar", 1), ("bar-rome", 1)])
            try await lab.addTrafficSplit("baz-split", apex: "baz", backends: [("baz", 1), ("baz-paris", 1)])
            try await lab.addTrafficSplit("qux-split", apex: "qux", backends: [("qux", 1), ("qux-paris", 1)])
            let feed = try lab.startPolicyFeed()

            #expect(await eventually { feed.policy("default", "baz") != nil })
            #expect(await eventually {
                feed.source.status.skipped.contains("TrafficSplit default/bar-split: backend bar-rome is not a mirrored service here (no Link mirrors it, or it is not exported)")
            })
            let status = feed.source.status
            #expect(status.skipped.contains("TrafficSplit default/qux-split: apex Service default/qux does not exist"), "\(status.skipped)")
            #expect(status.policies == 1)
            #expect(feed.state?.policies.map(\.name) == ["baz"])

            // The missing apex Service created: its split follows.
            try await lab.addLocalService("qux", clusterIP: "10.96.200.12")
            #expect(await eventually { feed.policy("default", "qux") != nil })
            #expect(feed.policy("default", "qux")?.localReady == false)
            #expect(!feed.source.status.skipped.contains { $0.hasPrefix("TrafficSplit default/qux-split") })
            #expect(feed.source.status.policies == 2)
            await feed.stop()
        }
    }

    @Test func withoutTheTrafficSplitCRDMirrorsArePublishedAndTheCRDIsLookedForAgain() async throws {
        try await SourceLab.with { lab in
            try await CRDProxy.with(upstream: lab.local, missing: ["trafficsplits"]) { proxy in
                try await linkParis(lab)
                try await lab.addLocalService("bar", clusterIP: "10.96.200.10")
                try await lab.addLocalSlice("bar", ready: [true])
                // Stored behind the proxy: the feed sees it only once the CRD is "installed".
                try await lab.addTrafficSplit("bar-split", apex: "bar", backends: [("bar", 90), ("bar-paris", 10)])
                let feed = try lab.startPolicyFeed(server: proxy.url)

                #expect(await eventually { feed.service("default", "bar-paris")?.ips.isEmpty == false })
                #expect(feed.source.status.trafficSplits == .absent)
                #expect(feed.source.status.policies == 0 && feed.state?.policies.isEmpty == true)
                #expect(try await lab.localService("default", "bar-paris") != nil)

                // Asked again every trafficSplitRetryInterval (500 ms here), no faster.
                let first = try await proxy.refused("trafficsplits")
                try await Task.sleep(for: .seconds(2))
                let asked = try await proxy.refused("trafficsplits") - first
                #expect((2...6).contains(asked), "asked \(asked) times in 2 s")

                // The CRD installed: the split becomes a policy.
                try await proxy.serve("trafficsplits")
                #expect(await eventually { feed.policy("default", "bar") != nil })
                #expect(feed.source.status.trafficSplits == .served)
                #expect(feed.policy("default", "bar")?.backends.map(\.weight) == [900, 100])

                // The CRD deleted: no policies, the mirrors stay.
                try await proxy.hide("trafficsplits")
                #expect(await eventually { feed.state?.policies.isEmpty == true })
                #expect(feed.source.status.trafficSplits == .absent)
                #expect(feed.service("default", "bar-paris") != nil)
                await feed.stop()
            }
        }
    }

    @Test func trafficSplitsTheFeedMayNotReadMeanNoPoliciesWithoutDelayingTheMirrors() async throws {
        try await SourceLab.with { lab in
            try await CRDProxy.with(upstream: lab.local, forbidden: ["trafficsplits"]) { proxy in
                try await linkParis(lab)
                try await lab.addLocalService("bar", clusterIP: "10.96.200.10")
                try await lab.addTrafficSplit("bar-split", apex: "bar", backends: [("bar", 90), ("bar-paris", 10)])
                let started = ContinuousClock.now
                // A long initial wait: the first publication must not be waiting for the splits.
                let feed = try lab.startPolicyFeed(server: proxy.url) { $0.initialSyncTimeout = .seconds(30) }
                #expect(await eventually { feed.service("default", "bar-paris")?.ips.isEmpty == false })
                #expect(ContinuousClock.now - started < .seconds(10))
                #expect(feed.source.status.trafficSplits == .forbidden)
                #expect(feed.state?.policies.isEmpty == true)

                // Granted later: asked again, and followed.
                try await proxy.serve("trafficsplits")
                #expect(await eventually { feed.policy("default", "bar") != nil })
                #expect(feed.source.status.trafficSplits == .served)
                await feed.stop()
            }
        }
    }
}
