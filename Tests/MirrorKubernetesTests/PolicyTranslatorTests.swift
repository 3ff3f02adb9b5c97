import Foundation
import MirrorModel
import Testing
@testable import MirrorKubernetes

/// The pure translation from SMI TrafficSplits, the local apex Services and their
/// EndpointSlices to the state's traffic policies (no server needed).
struct PolicyTranslatorTests {
    static let paris = Cluster(name: "paris", gateway: Gateway(addresses: ["192.0.2.10"]))
    static let berlin = Cluster(name: "berlin", gateway: Gateway(addresses: ["192.0.2.20"]))
    static let http = [ServicePort(name: "http", port: 80, targetPort: 8080)]

    static func mirror(_ name: String, _ cluster: String, ip: String, namespace: String = "default",
                       ports: [ServicePort] = http) -> MirroredService {
        MirroredService(name: name, namespace: namespace, cluster: cluster, mode: .gateway, ips: [ip], ports: ports)
    }

    /// bar-paris and bar-berlin in default (port 80/TCP), bar-paris in shop.
    static let state = MirrorState(clusters: [paris, berlin], services: [
        mirror("bar", "paris", ip: "10.96.1.10"), mirror("bar", "berlin", ip: "10.96.1.11"),
        mirror("bar", "paris", ip: "10.96.1.12", namespace: "shop"),
    ])

    func split(_ backends: [(String, Int)], name: String = "bar-split", namespace: String = "default", apex: String? = "bar",
               labels: [String: String]? = nil, annotations: [String: String]? = nil) -> TrafficSplit {
        TrafficSplit(metadata: ObjectMeta(name: name, namespace: namespace, labels: labels, annotations: annotations),
                     spec: TrafficSplitSpec(service: apex, backends: backends.map { TrafficSplitBackend(service: $0.0, weight: $0.1) }))
    }

    func failoverSplit(_ backends: [String], primary: String? = "bar") -> TrafficSplit {
        split(backends.map { ($0, $0 == "bar" ? 1 : 0) }, labels: [TrafficSplit.failoverControlledByLabel: "linkerd-failover"],
              annotations: primary.map { [TrafficSplit.failoverPrimaryServiceAnnotation: $0] })
    }

    func local(_ name: String = "bar", namespace: String = "default", clusterIP: String? = "10.96.0.50", clusterIPs: [String]? = nil,
               ports: [KubeServicePort] = [KubeServicePort(name: "http", protocol: "TCP", port: 80, targetPort: .int(8080))],
               labels: [String: String]? = nil) -> KubeService {
        KubeService(metadata: ObjectMeta(name: name, namespace: namespace, labels: labels),
                    spec: KubeServiceSpec(type: "ClusterIP", clusterIP: clusterIP, clusterIPs: clusterIPs ?? clusterIP.map { [$0] }, ports: ports))
    }

    func slice(_ service: String = "bar", namespace: String = "default", name: String? = nil, ready: [Bool?]) -> KubeEndpointSlice {
        KubeEndpointSlice(metadata: ObjectMeta(name: name ?? "\(service)-abc", namespace: namespace,
                                               labels: [KubeEndpointSlice.serviceNameLabel: service]),
                          endpoints: ready.enumerated().map { index, ready in
                              KubeEndpoint(addresses: ["10.20.0.\(index + 1)"], conditions: ready.map { KubeEndpointConditions(ready: $0) })
                          },
                          ports: [KubeEndpointPort(name: "http", protocol: "TCP", port: 8080)])
    }

    func translate(_ splits: [TrafficSplit], services: [KubeService]? = nil, slices: [KubeEndpointSlice]? = nil,
                   state: MirrorState = PolicyTranslatorTests.state) -> PolicyTranslation {
        PolicyTranslator.translate(PolicyInput(trafficSplits: splits, localServices: services ?? [local()],
                                               localEndpointSlices: slices ?? [slice(ready: [true])], state: state))
    }

    func expectValid(_ translation: PolicyTranslation, state: MirrorState = PolicyTranslatorTests.state,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        var full = state
        full.policies = translation.policies
        let issues = full.validationIssues()
        #expect(issues.isEmpty, "\(issues)", sourceLocation: sourceLocation)
    }

    func reasons(_ translation: PolicyTranslation) -> [String] { translation.skipped.map(\.description) }

    // MARK: The mapping

    @Test func ninetyTenSplitBecomesLocalAndMirrorWeightsOnTheLocalClusterIP() throws {
        let result = translate([split([("bar", 90), ("bar-paris", 10)])])
        #expect(result.skipped.isEmpty, "\(reasons(result))")
        let policy = try #require(result.policies.first)
        #expect(policy == TrafficPolicy(name: "bar", namespace: "default", ips: ["10.96.0.50"],
                                        ports: [PolicyPort(name: "http", protocol: .tcp, port: 80)],
                                        backends: [PolicyBackend(mirror: nil, weight: 900), PolicyBackend(mirror: "bar-paris", weight: 100)],
                                        failover: [], localReady: true))
        expectValid(result)
    }

    @Test func dualStackApexKeepsBothClusterIPsAndEveryPort() throws {
        let apex = local(clusterIPs: ["10.96.0.50", "FD00:0:0::50"], ports: [
            KubeServicePort(name: "http", protocol: "TCP", port: 80), KubeServicePort(name: "dns", protocol: "UDP", port: 53),
            KubeServicePort(port: 9090)])
        let ports = [ServicePort(name: "http", port: 80), ServicePort(name: "dns", protocol: .udp, port: 53), ServicePort(port: 9090)]
        let state = MirrorState(clusters: [Self.paris], services: [Self.mirror("bar", "paris", ip: "10.96.1.10", ports: ports)])
        let result = translate([split([("bar-paris", 1)])], services: [apex], state: state)
        let policy = try #require(result.policies.first)
        #expect(policy.ips == ["10.96.0.50", "fd00::50"])
        #expect(policy.ports == [PolicyPort(name: "http", port: 80), PolicyPort(name: "dns", protocol: .udp, port: 53), PolicyPort(port: 9090)])
        // No local backend in the split: everything to the mirror.
        #expect(policy.backends == [PolicyBackend(mirror: "bar-paris", weight: 1000)])
        expectValid(result, state: state)
    }

    @Test func weightsAreScaledToAThousandByLargestRemainder() {
        #expect(PolicyTranslator.scale([90, 10]) == [900, 100])
        #expect(PolicyTranslator.scale([1, 1, 1]) == [334, 333, 333])
        #expect(PolicyTranslator.scale([1, 2]) == [333, 667])
        #expect(PolicyTranslator.scale([0, 5]) == [0, 1000])
        #expect(PolicyTranslator.scale([3, 3]) == [500, 500])
        #expect(PolicyTranslator.scale([999, 1]) == [999, 1])
        // Below a thousandth of the total, and a larger remainder elsewhere: 0.
        #expect(PolicyTranslator.scale([1, 3000]) == [0, 1000])
        #expect(PolicyTranslator.scale([2_147_483_647, 2_147_483_647]) == [500, 500])
        #expect(PolicyTranslator.scale([0, 0]) == nil)
        #expect(PolicyTranslator.scale([]) == nil)
        for weights in [[7, 11, 13], [1, 1, 1, 1, 1, 1, 1], [100, 1, 1], [5, 0, 995]] {
            #expect(PolicyTranslator.scale(weights)?.reduce(0, +) == 1000, "\(weights)")
        }
    }

    @Test func apexByFullyQualifiedNameAndBackendsInSpecOrder() throws {
        let result = translate([split([("bar-berlin", 1), ("bar", 2), ("bar-paris", 1)], apex: "bar.default.svc.cluster.local")])
        let policy = try #require(result.policies.first)
        #expect(policy.name == "bar")
        #expect(policy.backends == [PolicyBackend(mirror: "bar-berlin", weight: 250), PolicyBackend(mirror: nil, weight: 500),
                                    PolicyBackend(mirror: "bar-paris", weight: 250)])
        #expect(policy.failover.isEmpty)
        expectValid(result)
    }

    // MARK: Failover (Linkerd's failover operator)

    @Test func failoverSplitHasAllWeightLocalAndTheOtherBackendsInOrderAsFailover() throws {
        let result = translate([failoverSplit(["bar", "bar-paris", "bar-berlin"])])
        let policy = try #require(result.policies.first)
        #expect(policy.backends == [PolicyBackend(mirror: nil, weight: 1000), PolicyBackend(mirror: "bar-paris", weight: 0),
                                    PolicyBackend(mirror: "bar-berlin", weight: 0)])
        #expect(policy.failover == ["bar-paris", "bar-berlin"])
        expectValid(result)

        // The operator rewrote the weights while failed over (primary 0): they are not read.
        var flipped = failoverSplit(["bar", "bar-berlin", "bar-paris"])
        flipped.spec.backends = [TrafficSplitBackend(service: "bar", weight: 0), TrafficSplitBackend(service: "bar-berlin", weight: 1),
                                 TrafficSplitBackend(service: "bar-paris", weight: 1)]
        let again = try #require(translate([flipped]).policies.first)
        #expect(again.backends.first == PolicyBackend(mirror: nil, weight: 1000))
        #expect(again.failover == ["bar-berlin", "bar-paris"])
    }

    @Test func failoverPrimaryIsTheFirstBackendWithoutTheAnnotationAndMustBeTheApex() throws {
        let implicit = try #require(translate([failoverSplit(["bar", "bar-paris"], primary: nil)]).policies.first)
        #expect(implicit.failover == ["bar-paris"])

        let remotePrimary = translate([failoverSplit(["bar-paris", "bar"], primary: nil)])
        #expect(remotePrimary.policies.isEmpty)
        #expect(reasons(remotePrimary) == ["TrafficSplit default/bar-split: failover primary bar-paris is not the apex service bar (only the local service fails over)"])
        let annotated = translate([failoverSplit(["bar", "bar-paris"], primary: "bar-paris")])
        #expect(annotated.policies.isEmpty && annotated.skipped.count == 1)

        // Only the label makes a failover split (the operator's selector); the annotation alone does not.
        let plain = try #require(translate([split([("bar", 1), ("bar-paris", 1)],
                                                  annotations: [TrafficSplit.failoverPrimaryServiceAnnotation: "bar"])]).policies.first)
        #expect(plain.failover.isEmpty && plain.backends.map(\.weight) == [500, 500])
    }

    // MARK: Local readiness

    @Test func localReadyFollowsTheApexReadyEndpoints() throws {
        func ready(_ slices: [KubeEndpointSlice]) throws -> Bool {
            try #require(translate([split([("bar", 9), ("bar-paris", 1)])], slices: slices).policies.first).localReady
        }
        #expect(try ready([slice(ready: [false, true])]))
        #expect(try ready([slice(name: "a", ready: [false]), slice(name: "b", ready: [true])]))
        // No condition reads as ready, as the API says.
        #expect(try ready([slice(ready: [nil])]))
        #expect(try !ready([slice(ready: [false, false])]))
        #expect(try !ready([slice(ready: [])]))
        #expect(try !ready([]))
        // Another service's, or another namespace's, slices do not count.
        #expect(try !ready([slice("baz", ready: [true]), slice(namespace: "shop", ready: [true])]))
    }

    // MARK: Left out, with the reason

    @Test func splitNamingAMirrorThatDoesNotExistIsSkippedAndOthersArePublished() throws {
        let result = translate([split([("bar", 1), ("bar-rome", 1)], name: "a-split"),
                                split([("bar", 1), ("bar-paris", 1)], name: "b-split", namespace: "shop")],
                               services: [local(), local(namespace: "shop", clusterIP: "10.96.0.60")],
                               slices: [])
        #expect(result.policies.map(\.key) == [PolicyKey(namespace: "shop", name: "bar")])
        #expect(reasons(result) == ["TrafficSplit default/a-split: backend bar-rome is not a mirrored service here (no Link mirrors it, or it is not exported)"])
        expectValid(result)
    }

    @Test func unusableSplitsAreSkippedWithAReasonNamingThem() {
        let cases: [(TrafficSplit, [KubeService], String)] = [
            (split([("bar", 1)]), [], "apex Service default/bar does not exist"),
            (split([("bar", 1)], apex: nil), [local()], "spec.service \"\" is not a service name"),
            (split([("bar", 1)], apex: "bar.shop.svc.cluster.local"), [local()],
             "spec.service \"bar.shop.svc.cluster.local\" is a service of another namespace"),
            (split([("bar", 0), ("bar-paris", 0)]), [local()], "every backend weight is 0"),
            (split([]), [local()], "spec.backends is empty"),
            (split([("bar", 1), ("bar", 2)]), [local()], "backend bar is listed twice"),
            (split([("bar", 1), ("Bar_Paris", 2)]), [local()], "backend \"Bar_Paris\" is not a service name of the namespace"),
            (split([("bar", -1), ("bar-paris", 2)]), [local()], "backend bar: weight -1 is not an integer in 0...2147483647"),
            (split([("bar", 1)]), [local(clusterIP: "None")], "apex Service default/bar has no ClusterIP (headless or ExternalName)"),
            (split([("bar", 1)]), [local(ports: [KubeServicePort(name: "x", protocol: "HTTP", port: 80)])],
             "apex Service default/bar has no port to split (TCP, UDP, SCTP)"),
            (split([("bar-berlin", 1)], apex: "bar-paris"), [local("bar-paris", clusterIP: "10.96.0.70")],
             "apex Service default/bar-paris is a mirror Service, not a local one"),
            (split([("bar", 1), ("bar-paris", 1)]),
             [local(ports: [KubeServicePort(name: "http", port: 80), KubeServicePort(name: "grpc", port: 9000)])],
             "mirror bar-paris has no port 9000/TCP"),
        ]
        for (split, services, reason) in cases {
            let result = translate([split], services: services)
            #expect(result.policies.isEmpty, "\(reason)")
            #expect(reasons(result).last == "TrafficSplit default/bar-split: \(reason)")
        }

        var textWeight = split([("bar", 1), ("bar-paris", 1)])
        textWeight.spec.backends[1] = try! JSONDecoder().decode(TrafficSplitBackend.self, from: Data(#"{"service": "bar-paris", "weight": "500m"}"#.utf8))
        #expect(reasons(translate([textWeight])) == ["TrafficSplit default/bar-split: backend bar-paris: weight 500m is not an integer in 0...2147483647"])

        var matched = split([("bar", 1), ("bar-paris", 1)])
        matched.spec.matches = [TrafficSplitMatch(kind: "HTTPRouteGroup", name: "canary")]
        #expect(reasons(translate([matched])).first?.contains("spec.matches") == true)

        var deleting = local()
        deleting.metadata.deletionTimestamp = "2026-01-01T00:00:00Z"
        #expect(reasons(translate([split([("bar", 1)])], services: [deleting])) == ["TrafficSplit default/bar-split: apex Service default/bar is being deleted"])
    }

    @Test func portsTheAgentCannotSplitAreLeftOutAndReported() throws {
        let apex = local(ports: [KubeServicePort(name: "http", protocol: "TCP", port: 80), KubeServicePort(name: "odd", protocol: "HTTP", port: 81)])
        let result = translate([split([("bar", 1), ("bar-paris", 1)])], services: [apex])
        #expect(try #require(result.policies.first).ports == [PolicyPort(name: "http", port: 80)])
        #expect(reasons(result) == ["TrafficSplit default/bar-split: port odd of Service default/bar left out: protocol HTTP is not supported"])
    }

    @Test func secondSplitOfTheSameApexIsSkipped() {
        let result = translate([split([("bar", 1), ("bar-berlin", 1)], name: "b"), split([("bar", 1), ("bar-paris", 1)], name: "a")])
        #expect(result.policies.count == 1)
        #expect(result.policies.first?.backends.last?.mirror == "bar-paris")
        #expect(reasons(result) == ["TrafficSplit default/b: TrafficSplit default/a already sets the policy of default/bar"])
        expectValid(result)
    }

    @Test func theStateModelHasTheLastWord() {
        // The apex's ClusterIP is also a mirror's (should not happen): the policy is dropped, the mirror stays.
        let result = translate([split([("bar", 1), ("bar-paris", 1)])], services: [local(clusterIP: "10.96.1.11")])
        #expect(result.policies.isEmpty)
        #expect(reasons(result).first?.hasPrefix("TrafficSplit default/bar-split: rejected by the state model: policies[0] default/bar") == true)
    }

    // MARK: The object

    @Test func trafficSplitsDecodeAsTheAPIServesThem() throws {
        let split = try JSONDecoder().decode(TrafficSplit.self, from: Data("""
            {"apiVersion": "split.smi-spec.io/v1alpha2", "kind": "TrafficSplit",
             "metadata": {"name": "sample-svc", "namespace": "default", "resourceVersion": "7",
                          "labels": {"failover.linkerd.io/controlled-by": "linkerd-failover"},
                          "annotations": {"failover.linkerd.io/primary-service": "sample-svc"}},
             "spec": {"service": "sample-svc",
                      "backends": [{"service": "sample-svc", "weight": 1}, {"service": "sample-svc-paris", "weight": "1"},
                                   {"service": "sample-svc-berlin"}]}}
            """.utf8))
        #expect(split.key == "default/sample-svc" && split.spec.service == "sample-svc")
        #expect(split.spec.backends.map(\.service) == ["sample-svc", "sample-svc-paris", "sample-svc-berlin"])
        #expect(split.spec.backends.map(\.weight) == [1, nil, nil])
        #expect(split.spec.backends[1].weightText == "1")
        #expect(split.isFailoverControlled && split.failoverPrimaryService == "sample-svc")
        #expect(PolicyTranslator.apexKey(split) == "default/sample-svc")
        #expect(TrafficSplit.resource.collectionPath(namespace: nil) == "/apis/split.smi-spec.io/v1alpha2/trafficsplits")

        // A spec the type cannot read is an empty one (reported by the translation), not a failed list.
        let odd = try JSONDecoder().decode(TrafficSplit.self, from: Data(#"{"metadata": {"name": "x", "namespace": "d"}, "spec": {"backends": 3}}"#.utf8))
        #expect(odd.spec.backends.isEmpty && !odd.isFailoverControlled && odd.failoverPrimaryService == nil)
    }
}
