import MirrorModel
import Testing
@testable import MirrorKubernetes

/// The pure translation from a Link and a remote cluster's Services and EndpointSlices to
/// the mirror state and the local mirror Services (no server needed).
struct MirrorTranslationTests {
    static let exported = ["mirror.linkerd.io/exported": "true"]
    static let remoteDiscovery = ["mirror.linkerd.io/exported": "remote-discovery"]
    static let federated = ["mirror.linkerd.io/federated": "member"]

    func link(_ cluster: String, gateway: String? = "192.0.2.10,192.0.2.11", port: String? = "4143") -> LinkerdLink {
        var spec = LinkerdLinkSpec(targetClusterName: cluster, gatewayAddress: gateway, gatewayPort: port)
        spec.gatewayIdentity = "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.\(cluster).local"
        return LinkerdLink(metadata: ObjectMeta(name: cluster, namespace: "linkerd-multicluster"), spec: spec)
    }

    func service(_ name: String, namespace: String = "default", labels: [String: String]?,
                 annotations: [String: String]? = nil, ports: [KubeServicePort] = [KubeServicePort(name: "http", port: 80, targetPort: .int(8080))],
                 clusterIP: String = "10.96.0.10") -> KubeService {
        KubeService(metadata: ObjectMeta(name: name, namespace: namespace, labels: labels, annotations: annotations),
                    spec: KubeServiceSpec(clusterIP: clusterIP, ports: ports))
    }

    func slice(_ name: String, service: String, namespace: String = "default", addressType: String = "IPv4",
               endpoints: [KubeEndpoint], ports: [KubeEndpointPort] = [KubeEndpointPort(name: "http", protocol: "TCP", port: 8080)]) -> KubeEndpointSlice {
        KubeEndpointSlice(metadata: ObjectMeta(name: name, namespace: namespace, labels: [KubeEndpointSlice.serviceNameLabel: service]),
                          addressType: addressType, endpoints: endpoints, ports: ports)
    }

    func ready(_ ip: String, hostname: String? = nil) -> KubeEndpoint {
        KubeEndpoint(addresses: [ip], conditions: KubeEndpointConditions(ready: true), hostname: hostname)
    }

    func notReady(_ ip: String) -> KubeEndpoint {
        KubeEndpoint(addresses: [ip], conditions: KubeEndpointConditions(ready: false, terminating: true))
    }

    func expectValid(_ translation: MirrorTranslation, sourceLocation: SourceLocation = #_sourceLocation) {
        let issues = translation.state().validationIssues()
        #expect(issues.isEmpty, "\(issues)", sourceLocation: sourceLocation)
        var store = MirrorStore()
        #expect(throws: Never.self, sourceLocation: sourceLocation) { try store.applySnapshot(translation.state(), revision: 1) }
    }

    @Test func theClusterComesFromTheLink() {
        let result = MirrorTranslator.translate([MirrorLinkInput(link: link("paris", gateway: "192.0.2.10, 192.0.2.11", port: "4180"),
                                                                  gatewayAlive: false, masquerade: true)],
                                                localClusterIPs: [:])
        #expect(result.clusters == [Cluster(name: "paris", gateway: Gateway(
            addresses: ["192.0.2.10", "192.0.2.11"], port: 4180,
            identity: "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.paris.local", alive: false),
            masquerade: true)])
        // No port: Linkerd's default.
        let defaulted = MirrorTranslator.translateLink(MirrorLinkInput(link: link("paris", port: nil)), localClusterIPs: [:])
        #expect(defaulted.clusters.first?.gateway?.port == 4143 && defaulted.clusters.first?.gateway?.alive == true)
        expectValid(result)
    }

    @Test func gatewayModeCopiesPortsAndUsesTheLocalClusterIPs() {
        let bar = service("bar", labels: Self.exported, ports: [
            KubeServicePort(name: "http", port: 80, targetPort: .int(8080)),
            KubeServicePort(name: "dns", protocol: "UDP", port: 53),
        ])
        let result = MirrorTranslator.translate([MirrorLinkInput(link: link("paris"), services: [bar])],
                                                localClusterIPs: ["default/bar-paris": ["10.100.0.5", "fd00::5"]])
        #expect(result.services == [MirroredService(name: "bar", namespace: "default", cluster: "paris", mode: .gateway,
                                                    ips: ["10.100.0.5", "fd00::5"],
                                                    ports: [ServicePort(name: "http", protocol: .tcp, port: 80, targetPort: 8080),
                                                            ServicePort(name: "dns", protocol: .udp, port: 53)])])
        #expect(result.services.first?.ports.allSatisfy { $0.gatewayPort == nil } == true)
        #expect(result.skipped.isEmpty, "\(result.skipped)")
        expectValid(result)
    }

    @Test func theGatewayPortsAnnotationSetsEachPortsGatewayPort() {
        let annotations = [MirrorTranslator.gatewayPortsAnnotation: "http=20001, 53/UDP=20002,9090=20003,nope=20004,bad"]
        let bar = service("bar", labels: Self.exported, annotations: annotations, ports: [
            KubeServicePort(name: "http", port: 80),
            KubeServicePort(name: "dns", protocol: "UDP", port: 53),
            KubeServicePort(name: "dns-tcp", protocol: "TCP", port: 53),
            KubeServicePort(name: "metrics", port: 9090),
            KubeServicePort(name: "admin", port: 9999),
        ])
        let result = MirrorTranslator.translate([MirrorLinkInput(link: link("paris"), services: [bar])],
                                                localClusterIPs: ["default/bar-paris": ["10.100.0.5"]])
        let gatewayPorts = result.services.first?.ports.map(\.gatewayPort)
        #expect(gatewayPorts == [20001, 20002, nil, 20003, nil])
        let annotationSkips = result.skipped.compactMap { skip -> String? in
            if case .invalidGatewayPortsAnnotation(let entry) = skip.reason { return entry } else { return nil }
        }
        #expect(annotationSkips.count == 2 && annotationSkips.contains { $0.contains("nope") } && annotationSkips.contains { $0.contains("bad") })
        expectValid(result)
    }

    @Test func aLinkRequiringGatewayPortsWaitsForThem() {
        var required = link("paris")
        required.metadata.annotations = [MirrorTranslator.gatewayPortsRequiredAnnotation: "true"]
        let ports = [KubeServicePort(name: "http", port: 80), KubeServicePort(name: "metrics", port: 9090)]
        let waiting = service("bar", labels: Self.exported, ports: ports)
        let partial = service("baz", labels: Self.exported, annotations: [MirrorTranslator.gatewayPortsAnnotation: "http=20001"], ports: ports)
        let result = MirrorTranslator.translate([MirrorLinkInput(link: required, services: [waiting, partial])],
                                                localClusterIPs: ["default/bar-paris": ["10.100.0.5"], "default/baz-paris": ["10.100.0.6"]])
        // Nothing of bar (no port has one yet); baz with its one allocated port only.
        #expect(result.services.map(\.mirroredName) == ["baz-paris"])
        #expect(result.services.first?.ports.map(\.gatewayPort) == [20001])
        #expect(result.mirrorServices.map(\.metadata.name) == ["baz-paris"])
        let waitingSkips = result.skipped.filter { $0.reason == .awaitingGatewayPort }.map(\.object)
        #expect(waitingSkips.sorted() == ["Service default/bar port http", "Service default/bar port metrics", "Service default/baz port metrics"])
        expectValid(result)
        // Without the annotation on the Link, the Link's gatewayPort is used as before.
        let plain = MirrorTranslator.translate([MirrorLinkInput(link: link("paris"), services: [waiting])],
                                               localClusterIPs: ["default/bar-paris": ["10.100.0.5"]])
        #expect(plain.services.first?.ports.map(\.gatewayPort) == [nil, nil])
    }

    @Test func remoteDiscoveryTakesReadyEndpointsAndResolvesNamedTargetPorts() {
        let web = service("web", labels: Self.remoteDiscovery, ports: [
            KubeServicePort(name: "http", port: 80, targetPort: .string("web-http")),
            KubeServicePort(name: "grpc", port: 9000, targetPort: .int(9000)),
        ])
        let slices = [
            slice("web-a", service: "web", endpoints: [ready("10.20.1.5", hostname: "web-0"), notReady("10.20.1.6")],
                  ports: [KubeEndpointPort(name: "http", protocol: "TCP", port: 8081), KubeEndpointPort(name: "grpc", protocol: "TCP", port: 9000)]),
            slice("web-b", service: "web", endpoints: [ready("10.20.2.7"), KubeEndpoint(addresses: ["10.20.2.8"])],
                  ports: [KubeEndpointPort(name: "http", protocol: "TCP", port: 8081), KubeEndpointPort(name: "grpc", protocol: "TCP", port: 9000)]),
            // Another service's slice and another namespace's are not this service's.
            slice("other-a", service: "other", endpoints: [ready("10.20.3.1")]),
            slice("web-x", service: "web", namespace: "prod", endpoints: [ready("10.20.4.1")]),
        ]
        let result = MirrorTranslator.translate([MirrorLinkInput(link: link("paris"), services: [web], endpointSlices: slices)],
                                                localClusterIPs: ["default/web-paris": ["10.100.0.9"]])
        #expect(result.services.count == 1)
        let mirrored = result.services.first
        #expect(mirrored?.mode == .remoteDiscovery && mirrored?.cluster == "paris")
        #expect(mirrored?.ports == [ServicePort(name: "http", port: 80, targetPort: 8081), ServicePort(name: "grpc", port: 9000, targetPort: 9000)])
        // Not-ready 10.20.1.6 is out; an unset `ready` counts as ready (the API's rule).
        #expect(mirrored?.endpoints == [Endpoint(ip: "10.20.1.5", hostname: "web-0"), Endpoint(ip: "10.20.2.7"), Endpoint(ip: "10.20.2.8")])
        #expect(result.skipped.isEmpty, "\(result.skipped)")
        expectValid(result)
    }

    @Test func remoteDiscoveryWinsOverGatewayAndTheLinksOwnSelectorsApply() {
        var custom = link("paris")
        custom.spec.selector = LabelSelector(matchLabels: ["export": "yes"])
        custom.spec.remoteDiscoverySelector = LabelSelector(matchExpressions: [LabelSelectorRequirement(key: "flat", operator: "Exists")])
        let services = [
            service("a", labels: ["export": "yes"]),
            service("b", labels: ["export": "yes", "flat": ""]),
            service("c", labels: Self.exported),          // default label, but the Link chose another selector
            service("d", labels: ["app": "d"]),
            service("e", labels: nil),
        ]
        let ips = ["default/a-paris": ["10.100.0.1"], "default/b-paris": ["10.100.0.2"], "default/c-paris": ["10.100.0.3"]]
        let result = MirrorTranslator.translate([MirrorLinkInput(link: custom, services: services)], localClusterIPs: ips)
        #expect(result.services.map(\.name) == ["a", "b"])
        #expect(result.services.map(\.mode) == [.gateway, .remoteDiscovery])
        #expect(result.mirrorServices.map(\.metadata.name) == ["a-paris", "b-paris"])
        #expect(result.skipped.isEmpty, "\(result.skipped)")
        expectValid(result)
    }

    @Test func servicesMatchingNoSelectorAreIgnored() {
        let services = [service("plain", labels: ["app": "plain"]), service("other", labels: ["mirror.linkerd.io/exported": "false"]),
                        service("bar", labels: Self.exported)]
        let result = MirrorTranslator.translate([MirrorLinkInput(link: link("paris"), services: services)],
                                                localClusterIPs: ["default/bar-paris": ["10.100.0.5"], "default/plain-paris": ["10.100.0.6"]])
        #expect(result.services.map(\.mirroredName) == ["bar-paris"])
        #expect(result.mirrorServices.map(\.metadata.name) == ["bar-paris"])
        #expect(result.skipped.isEmpty)
    }

    @Test func theSkipReportSaysWhatWasLeftOutAndWhy() {
        let longName = String(repeating: "s", count: 60)
        let services = [
            service("waiting", labels: Self.exported),
            service(longName, labels: Self.exported),
            service("ext", labels: Self.exported, ports: []).with { $0.spec.type = "ExternalName" },
            service("mixed", labels: Self.exported, ports: [KubeServicePort(name: "http", port: 80),
                                                            KubeServicePort(name: "odd", protocol: "QUIC", port: 443)]),
            service("quic", labels: Self.exported, ports: [KubeServicePort(name: "odd", protocol: "QUIC", port: 443)]),
            service("headless", labels: Self.exported, clusterIP: "None"),
            service("Bad_Name", labels: Self.exported),
        ]
        let ips = ["default/mixed-paris": ["10.100.0.7"], "default/headless-paris": ["10.100.0.8"], "default/quic-paris": ["10.100.0.9"]]
        let result = MirrorTranslator.translate([MirrorLinkInput(link: link("paris"), services: services)], localClusterIPs: ips)
        func reasons(_ object: String) -> [MirrorSkip.Reason] { result.skipped.filter { $0.object.contains(object) }.map(\.reason) }
        #expect(reasons("default/waiting-paris") == [.awaitingClusterIP])
        #expect(reasons(longName) == [.mirroredNameTooLong("\(longName)-paris")])
        #expect(reasons("Service default/ext") == [.unsupportedType("ExternalName")])
        #expect(reasons("Service default/mixed port odd") == [.unsupportedProtocol("QUIC")])
        #expect(reasons("Service default/quic") == [.unsupportedProtocol("QUIC"), .noPorts])
        #expect(reasons("Service default/Bad_Name") == [.invalidName])
        #expect(result.skipped.allSatisfy { $0.cluster == "paris" })
        // Mirrored: `mixed` with its TCP port only, and the headless one (it gets a ClusterIP here).
        #expect(result.services.map(\.mirroredName) == ["headless-paris", "mixed-paris"])
        #expect(result.services.last?.ports.map(\.port) == [80])
        // `waiting` has no IP yet but its mirror Service is desired: creating it allocates one.
        #expect(result.mirrorServices.map(\.metadata.name) == ["headless-paris", "mixed-paris", "waiting-paris"])
        expectValid(result)
    }

    @Test func oddLinksAreReportedNotFatal() {
        var noName = link("x")
        noName.spec.targetClusterName = nil
        var badSelector = link("rome")
        badSelector.spec.selector = LabelSelector(matchExpressions: [LabelSelectorRequirement(key: "k", operator: "Near")])
        let inputs = [
            MirrorLinkInput(link: noName, services: [service("bar", labels: Self.exported)]),
            MirrorLinkInput(link: link("berlin", gateway: "gw.example.com", port: "http"), services: [service("bar", labels: Self.exported)]),
            MirrorLinkInput(link: badSelector, services: [service("bar", labels: Self.exported)]),
            MirrorLinkInput(link: link("berlin"), services: []),
        ]
        let result = MirrorTranslator.translate(inputs, localClusterIPs: ["default/bar-berlin": ["10.100.0.1"], "default/bar-rome": ["10.100.0.2"]])
        #expect(result.clusters.map(\.name) == ["berlin", "rome"])
        #expect(result.clusters.first?.gateway == nil)
        #expect(result.services.isEmpty)
        let reasons = result.skipped.map(\.reason)
        #expect(reasons.contains(.invalidClusterName("")))
        #expect(reasons.contains(.invalidGatewayAddress("gw.example.com")) && reasons.contains(.invalidGatewayPort("http")))
        #expect(reasons.contains(.noGateway) && reasons.contains(.duplicateCluster))
        #expect(reasons.contains { if case .invalidSelector = $0 { true } else { false } })
        expectValid(result)
    }

    @Test func federatedMembersOfTwoClustersAreOneService() {
        let paris = MirrorLinkInput(link: link("paris"), services: [
            service("web", labels: Self.federated, ports: [KubeServicePort(name: "http", port: 80, targetPort: .string("http"))]),
        ], endpointSlices: [
            slice("web-1", service: "web", endpoints: [ready("10.1.0.1"), notReady("10.1.0.2")]),
        ])
        let berlin = MirrorLinkInput(link: link("berlin", gateway: nil), services: [
            service("web", labels: Self.federated, ports: [KubeServicePort(name: "http", port: 80, targetPort: .string("http"))]),
            service("solo", labels: Self.federated, ports: [KubeServicePort(name: "http", port: 80)]),
        ], endpointSlices: [
            slice("web-9", service: "web", endpoints: [ready("10.2.0.1", hostname: "web-0"), ready("10.2.0.2")]),
        ])
        let ips = ["default/web-federated": ["10.100.1.1"], "default/solo-federated": ["10.100.1.2"]]
        let federated = MirrorTranslator.translateFederated([paris, berlin], localClusterIPs: ips)
        #expect(federated.clusters.isEmpty)
        #expect(federated.services.map(\.mirroredName) == ["solo-federated", "web-federated"])
        let web = federated.services.last
        #expect(web?.mode == .federated && web?.cluster == nil)
        #expect(web?.ports == [ServicePort(name: "http", port: 80, targetPort: 8080)])
        #expect(web?.endpoints == [Endpoint(ip: "10.2.0.1", hostname: "web-0", cluster: "berlin"), Endpoint(ip: "10.2.0.2", cluster: "berlin"),
                                   Endpoint(ip: "10.1.0.1", cluster: "paris")])
        #expect(federated.mirrorServices.first { $0.metadata.name == "web-federated" }?.metadata.labels?[MirrorTranslator.clusterNameLabel] == nil)
        // The whole translation holds both clusters and validates; federated-only services are not mirrored per cluster.
        let whole = MirrorTranslator.translate([paris, berlin], localClusterIPs: ips)
        #expect(whole.clusters.map(\.name) == ["paris", "berlin"])
        #expect(whole.services.map(\.mirroredName).sorted() == ["solo-federated", "web-federated"])
        expectValid(whole)
    }

    @Test func aFederatedMemberWithOtherPortsContributesNothing() {
        let paris = MirrorLinkInput(link: link("paris"), services: [service("web", labels: Self.federated)],
                                    endpointSlices: [slice("web-1", service: "web", endpoints: [ready("10.1.0.1")])])
        let rome = MirrorLinkInput(link: link("rome"), services: [service("web", labels: Self.federated)],
                                   endpointSlices: [slice("web-2", service: "web", endpoints: [ready("10.3.0.1"), ready("10.1.0.1")],
                                                          ports: [KubeEndpointPort(name: "http", protocol: "TCP", port: 9999)])])
        let result = MirrorTranslator.translate([rome, paris], localClusterIPs: ["default/web-federated": ["10.100.1.1"]])
        #expect(result.services.first?.endpoints == [Endpoint(ip: "10.1.0.1", cluster: "paris")])
        #expect(result.skipped.contains { $0.cluster == "rome" && $0.reason == .federatedPortsMismatch })
        expectValid(result)
    }

    @Test func theMirrorServiceObjectsCarryTheLabelsAndPorts() {
        let bar = service("bar", namespace: "shop", labels: Self.exported, ports: [
            KubeServicePort(name: "http", port: 80, targetPort: .int(8080)),
            KubeServicePort(name: "stats", protocol: "UDP", port: 8125),
        ])
        let result = MirrorTranslator.translate([MirrorLinkInput(link: link("paris"), services: [bar])],
                                                localClusterIPs: ["shop/bar-paris": ["10.100.0.5"]])
        #expect(result.mirrorServices.count == 1)
        let mirror = result.mirrorServices.first
        #expect(mirror?.metadata.name == "bar-paris" && mirror?.metadata.namespace == "shop")
        #expect(mirror?.metadata.labels == ["service.kubernetes.io/service-proxy-name": "mirror-agent",
                                            "mirror.linkerd.io/mirrored-service": "true",
                                            "mirror.linkerd.io/cluster-name": "paris"])
        #expect(mirror?.spec.type == "ClusterIP" && mirror?.spec.selector == nil && mirror?.spec.clusterIP == nil)
        #expect(mirror?.spec.ports?.map(\.name) == ["http", "stats"])
        #expect(mirror?.spec.ports?.map(\.port) == [80, 8125])
        #expect(mirror?.spec.ports?.map(\.protocol) == ["TCP", "UDP"])
        #expect(result.services.first.map(MirrorTranslator.mirrorService(for:)) == mirror)
    }

    @Test func aSharedLocalClusterIPIsCaughtByTheSafetyNet() {
        let services = [service("a", labels: Self.exported), service("b", labels: Self.exported)]
        let result = MirrorTranslator.translate([MirrorLinkInput(link: link("paris"), services: services)],
                                                localClusterIPs: ["default/a-paris": ["10.100.0.5"], "default/b-paris": ["10.100.0.5"]])
        #expect(result.services.map(\.mirroredName) == ["a-paris"])
        #expect(result.skipped.contains { $0.object == "default/b-paris" && { if case .invalidState = $0 { true } else { false } }($0.reason) })
        expectValid(result)
    }
}

extension KubeService {
    fileprivate func with(_ change: (inout KubeService) -> Void) -> KubeService {
        var copy = self
        change(&copy)
        return copy
    }
}

extension MirrorTranslationTests {
    @Test func slicesThatDisagreeOrCarryNoIPsAreReported() {
        let web = service("web", labels: Self.remoteDiscovery, ports: [KubeServicePort(name: "http", port: 80, targetPort: .string("web"))])
        let slices = [
            slice("web-a", service: "web", endpoints: [ready("10.20.1.5")]),
            slice("web-b", service: "web", endpoints: [ready("10.20.1.9")], ports: [KubeEndpointPort(name: "http", protocol: "TCP", port: 8181)]),
            slice("web-c", service: "web", addressType: "FQDN", endpoints: [ready("web.example.com")]),
            slice("web-d", service: "web", addressType: "IPv6", endpoints: [ready("FD00::0:7"), ready("fd00::7")]),
        ]
        let result = MirrorTranslator.translate([MirrorLinkInput(link: link("paris"), services: [web], endpointSlices: slices)],
                                                localClusterIPs: ["default/web-paris": ["10.100.0.9"]])
        #expect(result.services.first?.ports.map(\.targetPort) == [8080])
        #expect(result.services.first?.endpoints.map(\.ip) == ["10.20.1.5", "fd00::7"])
        #expect(Set(result.skipped.map(\.reason)) == [.targetPortMismatch, .unsupportedAddress("FQDN")])
        #expect(result.skipped.allSatisfy { $0.object == "EndpointSlice default/web-b" || $0.object == "EndpointSlice default/web-c" })
        expectValid(result)
    }
}
