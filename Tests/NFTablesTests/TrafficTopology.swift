import Foundation
@testable import MirrorAgent
import Logging
import Sync

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
    private var serverPIDs: [Int32] = []

    init(_ label: String) throws {
        pod = try TestNamespace("\(label)-pod")
        node = try TestNamespace("\(label)-node")
        paris = try TestNamespace("\(label)-par")
        berlin = try TestNamespace("\(label)-ber")
        try link(node, "to-pod", "10.0.0.1/24", pod, "eth0", ["10.0.0.2/24"])
        try link(node, "to-paris", "10.99.1.1/24", paris, "eth0", ["10.99.1.2/24", "10.99.1.3/24", "10.20.1.5/32"])
        try link(node, "to-berlin", "10.99.2.1/24", berlin, "eth0", ["10.99.2.2/24", "10.30.1.5/32"])
        try pod.exec(["ip", "route", "add", "default", "via", "10.0.0.1"])
        try node.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        try node.exec(["ip", "route", "add", "10.20.1.0/24", "dev", "to-paris"])
        try node.exec(["ip", "route", "add", "10.30.1.0/24", "dev", "to-berlin"])
        // Host-network clients on the node need a route to the ClusterIP range before NAT.
        try node.exec(["ip", "route", "add", "10.112.0.0/16", "dev", "to-paris"])
        try paris.exec(["ip", "route", "add", "default", "dev", "eth0"])
        try berlin.exec(["ip", "route", "add", "default", "dev", "eth0"])
        try serve(paris, "10.99.1.2", 4143, "paris-gw-1")
        try serve(paris, "10.99.1.3", 4143, "paris-gw-2")
        try serve(paris, "10.20.1.5", 8080, "paris-pod")
        try serve(berlin, "10.99.2.2", 4143, "berlin-gw")
        try serve(berlin, "10.30.1.5", 8080, "berlin-pod")
    }

    deinit {
        // SIGKILL: the test runner's blocked-signal mask is inherited, so SIGTERM may not land.
        for pid in serverPIDs { kill(pid, SIGKILL) }
    }

    private func link(_ a: TestNamespace, _ aName: String, _ aAddress: String, _ b: TestNamespace, _ bName: String, _ bAddresses: [String]) throws {
        try Shell.run(["ip", "-n", a.name, "link", "add", aName, "type", "veth", "peer", "name", bName, "netns", b.name])
        try a.exec(["ip", "addr", "add", aAddress, "dev", aName])
        try a.exec(["ip", "link", "set", aName, "up"])
        for address in bAddresses { try b.exec(["ip", "addr", "add", address, "dev", bName]) }
        try b.exec(["ip", "link", "set", bName, "up"])
    }

    /// A tiny HTTP server answering `name` on `address:port`, started in the background by a
    /// shell so it keeps none of the test's descriptors open.
    private func serve(_ namespace: TestNamespace, _ address: String, _ port: Int, _ name: String) throws {
        // Close every inherited descriptor first: Foundation's Process watches a socket the
        // child inherits to learn that it exited, and a daemon holding it would hang the test.
        let closeAll = "for f in /proc/$$/fd/*; do n=${f##*/}; [ \"$n\" -gt 2 ] && eval \"exec $n>&-\" 2>/dev/null; done; "
        let script = closeAll + "/usr/bin/python3 \(Self.serverScript) \(address) \(port) \(name) </dev/null >/dev/null 2>&1 & echo $!"
        let pid = try namespace.exec(["bash", "-c", script]).trimmingCharacters(in: .whitespacesAndNewlines)
        if let value = Int32(pid) { serverPIDs.append(value) }
        for _ in 0 ..< 100 {
            if (try? namespace.exec(["ss", "-ltnH", "src", "\(address):\(port)"]))?.contains("LISTEN") == true { return }
            usleep(20_000)
        }
    }

    /// The server: reads the request head, answers `200` with the server's name, closes.
    private static let serverScript: String = {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("nftt-http-server.py").path
        let source = """
            import socket, sys
            address, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
            server = socket.socket()
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind((address, port))
            server.listen(64)
            body = (name + "\\n").encode()
            while True:
                client, _ = server.accept()
                client.settimeout(2)
                try:
                    data = b""
                    while b"\\r\\n\\r\\n" not in data:
                        chunk = client.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    client.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body) + body)
                except OSError:
                    pass
                client.close()

            """
        try? source.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }()

    /// `curl` from `namespace` to `url`: (exit status, body, seconds taken).
    func curl(from namespace: TestNamespace, _ url: String) throws -> (status: Int32, body: String, seconds: Double) {
        let start = Date()
        let marker = "\n%{exitcode}"
        let output = try namespace.exec(["curl", "-s", "--max-time", "3", "-w", marker, url], allowFailure: true)
        let seconds = Date().timeIntervalSince(start)
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        let status = Int32(lines.last ?? "") ?? -1
        let body = lines.dropLast().joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        return (status, body, seconds)
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
