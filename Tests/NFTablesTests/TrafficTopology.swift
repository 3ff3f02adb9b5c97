import Foundation
@testable import MirrorAgent
import Logging
import MirrorModel
import MirrorFeed

/// London's node and pod plus two remote clusters, as network namespaces joined by veth pairs:
///
///     pod (10.0.0.2) ── node (10.0.0.1 | 10.99.1.1 | 10.99.2.1) ─┬─ paris  (gateways 10.99.1.2/.3, pod 10.20.1.5)
///                                                                 └─ berlin (gateway 10.99.2.2, pod 10.30.1.5)
///
/// The remote namespaces have no route back to the pod network, so replies only arrive when the
/// node masquerades (both clusters are marked `masquerade`). Every server answers HTTP with its
/// own name, so a client sees which target it reached.
final class TrafficTopology: @unchecked Sendable {
    let pod: TestNamespace
    let node: TestNamespace
    let paris: TestNamespace
    let berlin: TestNamespace
    let lab = NamespaceLab()

    init(_ label: String) throws {
        pod = try TestNamespace("\(label)-pod")
        node = try TestNamespace("\(label)-node")
        paris = try TestNamespace("\(label)-par")
        berlin = try TestNamespace("\(label)-ber")
        try lab.link(node, "to-pod", "10.0.0.1/24", pod, "eth0", ["10.0.0.2/24"])
        try lab.link(node, "to-paris", "10.99.1.1/24", paris, "eth0", ["10.99.1.2/24", "10.99.1.3/24", "10.20.1.5/32"])
        try lab.link(node, "to-berlin", "10.99.2.1/24", berlin, "eth0", ["10.99.2.2/24", "10.30.1.5/32"])
        try pod.exec(["ip", "route", "add", "default", "via", "10.0.0.1"])
        try node.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        try node.exec(["ip", "route", "add", "10.20.1.0/24", "dev", "to-paris"])
        try node.exec(["ip", "route", "add", "10.30.1.0/24", "dev", "to-berlin"])
        // Host-network clients on the node need a route to the ClusterIP range before NAT.
        try node.exec(["ip", "route", "add", "10.112.0.0/16", "dev", "to-paris"])
        try paris.exec(["ip", "route", "add", "default", "dev", "eth0"])
        try berlin.exec(["ip", "route", "add", "default", "dev", "eth0"])
        try lab.serve(paris, "10.99.1.2", 4143, "paris-gw-1")
        try lab.serve(paris, "10.99.1.3", 4143, "paris-gw-2")
        try lab.serve(paris, "10.20.1.5", 8080, "paris-pod")
        try lab.serve(berlin, "10.99.2.2", 4143, "berlin-gw")
        try lab.serve(berlin, "10.30.1.5", 8080, "berlin-pod")
    }

    /// `curl` from `namespace` to `url`: (exit status, body, seconds taken).
    func curl(from namespace: TestNamespace, _ url: String) throws -> (status: Int32, body: String, seconds: Double) {
        try lab.curl(from: namespace, url)
    }

    /// The mirror state these namespaces implement.
    static func state(parisGateways: [String] = ["10.99.1.2"], berlinAlive: Bool = true) -> MirrorState {
        MirrorState(
            clusters: [
                Cluster(name: "paris", gateway: Gateway(addresses: parisGateways), masquerade: true),
                Cluster(name: "berlin", gateway: Gateway(addresses: ["10.99.2.2"], alive: berlinAlive), masquerade: true),
            ],
            services: [
                MirroredService(name: "bar", namespace: "default", cluster: "paris", mode: .gateway,
                                ips: ["10.112.0.10"], ports: [ServicePort(port: 80, targetPort: 8080)]),
                MirroredService(name: "baz", namespace: "default", cluster: "paris", mode: .remoteDiscovery,
                                ips: ["10.112.0.11"], ports: [ServicePort(port: 80, targetPort: 8080)],
                                endpoints: [Endpoint(ip: "10.20.1.5")]),
                MirroredService(name: "web", namespace: "default", mode: .federated,
                                ips: ["10.112.0.12"], ports: [ServicePort(port: 80, targetPort: 8080)],
                                endpoints: [Endpoint(ip: "10.20.1.5", cluster: "paris"), Endpoint(ip: "10.30.1.5", cluster: "berlin")]),
                MirroredService(name: "foo", namespace: "default", cluster: "berlin", mode: .gateway,
                                ips: ["10.112.0.30"], ports: [ServicePort(port: 80)]),
            ]
        )
    }

    /// Programs the node's nftables for `state` through the agent's component.
    func program(_ harness: ComponentHarness, _ state: MirrorState) async throws {
        _ = try await harness.apply(state)
    }

    func makeHarness() throws -> ComponentHarness {
        let logger = Logger(label: "traffic")
        return ComponentHarness(component: try node.run { try RulesComponent(dnsAddresses: [], logger: logger) })
    }
}
