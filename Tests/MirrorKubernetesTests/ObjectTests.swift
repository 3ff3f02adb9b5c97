import Foundation
import NIOCore
import Testing
@testable import MirrorKubernetes

/// The object types against API-shaped JSON, label selectors, times, the backoff, the
/// watch line splitter and the informer cache's rules (no server needed).
struct ObjectTests {
    func decode<T: Decodable>(_ type: T.Type, _ json: String) throws -> T {
        try JSONDecoder().decode(type, from: Data(json.utf8))
    }

    @Test func endpointSlicesDecodeWithTheirConditions() throws {
        let slice = try decode(KubeEndpointSlice.self, """
            {"metadata": {"name": "bar-x7k2p", "namespace": "default", "resourceVersion": "42",
                          "labels": {"kubernetes.io/service-name": "bar", "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
             "addressType": "IPv4",
             "endpoints": [{"addresses": ["10.20.1.5"], "conditions": {"ready": true, "serving": true, "terminating": false},
                            "hostname": "pod-0", "nodeName": "n1", "targetRef": {"kind": "Pod", "name": "bar-0"}},
                           {"addresses": ["10.20.1.6"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                           {"addresses": ["10.20.1.7"]}],
             "ports": [{"name": "http", "protocol": "TCP", "port": 8080}]}
            """)
        #expect(slice.serviceName == "bar" && slice.key == "default/bar-x7k2p")
        #expect(slice.endpoints.map(\.isReady) == [true, false, true])
        #expect(slice.endpoints[1].conditions?.terminating == true && slice.endpoints[0].hostname == "pod-0")
        #expect(slice.ports == [KubeEndpointPort(name: "http", protocol: "TCP", port: 8080)])
        let empty = try decode(KubeEndpointSlice.self, #"{"metadata": {"name": "e"}, "addressType": "IPv6", "endpoints": null}"#)
        #expect(empty.endpoints.isEmpty && empty.ports == nil)
    }

    @Test func servicesRoundTripWithoutKindInTheirFields() throws {
        let service = try decode(KubeService.self, """
            {"metadata": {"name": "bar", "namespace": "default", "uid": "u1", "deletionTimestamp": "2026-01-01T00:00:00Z"},
             "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "fd00::10"],
                      "ipFamilies": ["IPv4", "IPv6"], "ports": [{"name": "dns", "protocol": "UDP", "port": 53, "targetPort": "dns"}],
                      "selector": {"app": "bar"}, "sessionAffinity": "None"}}
            """)
        #expect(service.spec.allocatedClusterIPs == ["10.96.0.10", "fd00::10"])
        #expect(service.spec.ports?.first?.targetPort == .string("dns") && service.metadata.deletionTimestamp != nil)
        let headless = try decode(KubeService.self, #"{"metadata": {"name": "h"}, "spec": {"clusterIP": "None"}}"#)
        #expect(headless.spec.isHeadless && headless.spec.allocatedClusterIPs.isEmpty)

        // Request bodies carry apiVersion and kind, which list items lack.
        let body = try JSONSerialization.jsonObject(with: JSONEncoder().encode(Envelope(service))) as? [String: Any]
        #expect(body?["apiVersion"] as? String == "v1" && body?["kind"] as? String == "Service")
        #expect((body?["metadata"] as? [String: Any])?["name"] as? String == "bar")
        let lease = try JSONSerialization.jsonObject(with: JSONEncoder().encode(Envelope(KubeLease(metadata: ObjectMeta(name: "l"))))) as? [String: Any]
        #expect(lease?["apiVersion"] as? String == "coordination.k8s.io/v1" && lease?["kind"] as? String == "Lease")
    }

    @Test func linksDecodeTheirSpecAndSelectors() throws {
        let link = try decode(LinkerdLink.self, """
            {"apiVersion": "multicluster.linkerd.io/v1alpha3", "kind": "Link",
             "metadata": {"name": "paris", "namespace": "linkerd-multicluster"},
             "spec": {"targetClusterName": "paris", "targetClusterDomain": "cluster.local",
                      "targetClusterLinkerdNamespace": "linkerd", "clusterCredentialsSecret": "cluster-credentials-paris",
                      "gatewayAddress": "10.99.1.2,10.99.1.3", "gatewayPort": 4143, "gatewayIdentity": "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local",
                      "probeSpec": {"path": "/ready", "port": "4191", "period": "3s", "failureThreshold": 3, "timeout": "30s"},
                      "selector": {"matchLabels": {"mirror.linkerd.io/exported": "true"}},
                      "remoteDiscoverySelector": {"matchLabels": {"mirror.linkerd.io/exported": "remote-discovery"}},
                      "federatedServiceSelector": {"matchExpressions": [{"key": "mirror.linkerd.io/federated", "operator": "In", "values": ["member"]}]},
                      "excludedLabels": ["internal"]}}
            """)
        #expect(link.spec.targetClusterName == "paris" && link.spec.clusterCredentialsSecret == "cluster-credentials-paris")
        #expect(link.spec.gatewayPort == "4143" && link.spec.gatewayPortNumber == 4143)
        #expect(link.spec.gatewayAddresses == ["10.99.1.2", "10.99.1.3"])
        #expect(link.spec.probeSpec?.port == "4191" && link.spec.probeSpec?.failureThreshold == "3")
        #expect(try link.spec.selector?.queryText() == "mirror.linkerd.io/exported=true")
        #expect(try link.spec.federatedServiceSelector?.queryText() == "mirror.linkerd.io/federated in (member)")
        #expect(LinkerdLink.resource.collectionPath(namespace: "linkerd-multicluster")
                == "/apis/multicluster.linkerd.io/v1alpha3/namespaces/linkerd-multicluster/links")
        var bad = link.spec
        bad.gatewayPort = "70000"
        #expect(bad.gatewayPortNumber == nil)
    }

    @Test func labelSelectorsMatchAsTheirQueryTextDoes() throws {
        let selector = LabelSelector(matchLabels: ["tier": "web"], matchExpressions: [
            LabelSelectorRequirement(key: "env", operator: "In", values: ["prod", "canary"]),
            LabelSelectorRequirement(key: "legacy", operator: "DoesNotExist"),
            LabelSelectorRequirement(key: "team", operator: "Exists"),
            LabelSelectorRequirement(key: "zone", operator: "NotIn", values: ["b"]),
        ])
        #expect(try selector.queryText() == "tier=web,env in (canary,prod),!legacy,team,zone notin (b)")
        #expect(try selector.matches(["tier": "web", "env": "prod", "team": "x"]))
        #expect(try !selector.matches(["tier": "web", "env": "prod", "team": "x", "zone": "b"]))
        #expect(try !selector.matches(["tier": "web", "env": "dev", "team": "x"]))
        #expect(try !selector.matches(["tier": "web", "env": "prod", "team": "x", "legacy": ""]))
        #expect(try !selector.matches(nil))
        #expect(try LabelSelector().matches(nil) && LabelSelector().queryText() == nil)
        let unknown = LabelSelector(matchExpressions: [LabelSelectorRequirement(key: "k", operator: "Gt", values: ["1"])])
        #expect(throws: LabelSelectorError("k: unknown operator \"Gt\" (In, NotIn, Exists, DoesNotExist)")) { try unknown.queryText() }
        let empty = LabelSelector(matchExpressions: [LabelSelectorRequirement(key: "k", operator: "In")])
        #expect(throws: LabelSelectorError("k: operator In needs values")) { try empty.matches([:]) }
    }

    @Test func microTimeHasExactlySixDigits() throws {
        let date = Date(timeIntervalSince1970: 1_767_225_600.25)
        #expect(KubeTime.microTime(date) == "2026-01-01T00:00:00.250000Z")
        #expect(KubeTime.parse("2026-01-01T00:00:00.250000Z") == date)
        #expect(KubeTime.parse("2026-01-01T00:00:00Z") == Date(timeIntervalSince1970: 1_767_225_600))
        #expect(KubeTime.parse("yesterday") == nil)
    }

    @Test func backoffGrowsToItsCeilingWithJitter() {
        let backoff = RetryBackoff(initial: .milliseconds(100), maximum: .seconds(2), jitter: 0.5)
        #expect(backoff.delay(afterFailures: 1, unit: 0) == .milliseconds(100))
        #expect(backoff.delay(afterFailures: 3, unit: 0) == .milliseconds(400))
        #expect(backoff.delay(afterFailures: 10, unit: 0) == .seconds(2))
        #expect(backoff.delay(afterFailures: 10_000, unit: 0) == .seconds(2))
        #expect(backoff.delay(afterFailures: 10, unit: 0.999_999) > .milliseconds(999))
        for _ in 0..<100 {
            let delay = backoff.delay(afterFailures: 20)
            #expect(delay >= .seconds(1) && delay <= .seconds(2))
        }
    }

    @Test func watchLinesAreSplitAcrossBuffers() throws {
        var splitter = WatchLineSplitter(maxLine: 64)
        #expect(try splitter.append(ByteBuffer(string: "{\"a\":1}\n{\"b\"")).map { String(decoding: $0, as: UTF8.self) } == ["{\"a\":1}"])
        #expect(splitter.hasPartialLine)
        #expect(try splitter.append(ByteBuffer(string: ":2}\r\n\n")).map { String(decoding: $0, as: UTF8.self) } == ["{\"b\":2}\r"])
        #expect(!splitter.hasPartialLine)
        #expect(throws: KubeError.self) { try splitter.append(ByteBuffer(string: String(repeating: "x", count: 65))) }
    }

    /// A replayed event changes nothing; a re-list yields updates, additions, then deletions.
    @Test func theCacheHandsOnEachChangeOnce() {
        func service(_ name: String, _ version: String) -> KubeService {
            KubeService(metadata: ObjectMeta(name: name, namespace: "default", resourceVersion: version))
        }
        var cache = InformerCache<KubeService>()
        #expect(cache.replace(with: [service("a", "1"), service("b", "2")]).count == 2)
        #expect(cache.apply(.modified(service("a", "1"))) == nil)
        guard case .updated(let old, let new)? = cache.apply(.modified(service("a", "3"))) else {
            Issue.record("expected an update")
            return
        }
        #expect(old.metadata.resourceVersion == "1" && new.metadata.resourceVersion == "3")
        #expect(cache.apply(.deleted(service("z", "4"))) == nil)
        let changes = cache.replace(with: [service("a", "3"), service("c", "5"), service("b", "6")])
        #expect(changes.map(Self.describe) == ["updated default/b", "added default/c"])
        #expect(cache.replace(with: [service("c", "5")]).map(Self.describe) == ["deleted default/a", "deleted default/b"])
    }

    static func describe(_ event: InformerEvent<KubeService>) -> String {
        switch event {
        case .added(let object): "added \(object.key)"
        case .updated(_, let object): "updated \(object.key)"
        case .deleted(let object): "deleted \(object.key)"
        case .synced: "synced"
        }
    }
}
