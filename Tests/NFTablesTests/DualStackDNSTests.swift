import Foundation
import Testing

/// A dual-stack pod and the real `mirror-agent run` (DNS and nftables) on its node: a name
/// with v4 and v6 ClusterIPs whose targets are all IPv4 answers A only, so curl (which
/// prefers v6, with happy eyeballs) connects over v4 at once and never tries the v6 ClusterIP;
/// a service with v6 targets still gets AAAA and is reached over v6 (issue 16, item 7).
///
///     pod (10.0.0.2, fd00::2) ── node (agent; DNS on 169.254.20.11) ─┬─ paris  (gateway 10.99.1.2, later also fd99:1::2;
///                                                                     │          pod 10.20.1.5)
///                                                                     └─ berlin (gateway 10.99.2.2 and fd99:2::2)
///
/// Replies route back through the node (no masquerade). Every server answers HTTP with its
/// own name.
@Suite(.serialized) struct DualStackDNSTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let dnsAddress = "169.254.20.11"

    /// The mirror state: every service has a v4 and a v6 ClusterIP.
    static func state(parisGateways: [String]) -> String {
        """
        clusterDomain: cluster.local
        clusters:
          - name: paris
            gateway: {addresses: [\(parisGateways.map { "\"\($0)\"" }.joined(separator: ", "))], port: 4143, alive: true}
          - name: berlin
            gateway: {addresses: ["10.99.2.2", "fd99:2::2"], port: 4143, alive: true}
          - name: madrid
            gateway: {addresses: ["10.99.3.2"], port: 4143, alive: false}
        services:
          - {name: bar, namespace: default, cluster: paris, mode: gateway, ips: ["10.112.0.10", "fd00:112::10"],
             ports: [{name: http, protocol: TCP, port: 80}]}
          - {name: baz, namespace: default, cluster: paris, mode: remote-discovery, ips: ["10.112.0.11", "fd00:112::11"],
             ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080}],
             endpoints: [{ip: "10.20.1.5", ready: true}, {ip: "10.20.1.6", ready: false}]}
          - {name: foo, namespace: default, cluster: berlin, mode: gateway, ips: ["10.112.0.30", "fd00:112::30"],
             ports: [{name: http, protocol: TCP, port: 80}]}
          - {name: qux, namespace: default, cluster: madrid, mode: gateway, ips: ["10.112.0.40", "fd00:112::40"],
             ports: [{name: http, protocol: TCP, port: 80}]}

        """
    }

    @Test("curl to a name with v4+v6 ClusterIPs and v4 targets only connects over v4 at once; AAAA is NODATA; v6 targets keep AAAA")
    func dualStackPod() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let binary = Self.packageRoot.appendingPathComponent(".build/debug/mirror-agent").path
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build mirror-agent first (swift build): \(binary) is missing")
        let lab = try DualStackLab()
        let state = lab.work.appendingPathComponent("state.yaml")
        try Self.state(parisGateways: ["10.99.1.2"]).write(to: state, atomically: true, encoding: .utf8)
        try lab.startAgent(binary, ["run", "--feed", "file:\(state.path)",
                                    "--dns-address", Self.dnsAddress, "--dns-listen", "\(Self.dnsAddress):53", "--upstream", "127.0.0.1:5300",
                                    "--admin-socket", lab.work.appendingPathComponent("admin.sock").path, "--drift-check-interval", "0"])

        func dig(_ name: String, _ type: String) throws -> String {
            try lab.pod.exec(["dig", "@\(Self.dnsAddress)", "+time=2", "+tries=1", "\(name).default.svc.cluster.local", type], allowFailure: true)
        }
        func addresses(_ name: String, _ type: String) throws -> [String] {
            try lab.pod.exec(["dig", "@\(Self.dnsAddress)", "+time=2", "+tries=1", "+short", "\(name).default.svc.cluster.local", type],
                             allowFailure: true).split(separator: "\n").map(String.init)
        }
        /// NOERROR, no answer, the zone's SOA.
        func isNoData(_ reply: String) -> Bool {
            reply.contains("status: NOERROR") && reply.contains("ANSWER: 0,") && reply.contains("IN\tSOA")
        }

        var ready = false
        for _ in 0 ..< 100 {
            if try addresses("bar-paris", "A") == ["10.112.0.10"] { ready = true; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        try #require(ready, "the agent did not answer: \(lab.agentLog)")

        // v4 targets only (a v4 gateway; v4 pods, one of them not ready): A only, AAAA NODATA.
        for name in ["bar-paris", "baz-paris"] {
            let aaaa = try dig(name, "AAAA")
            #expect(isNoData(aaaa), "\(name) AAAA: \(aaaa)")
        }
        #expect(try addresses("baz-paris", "A") == ["10.112.0.11"])
        // The pod's own resolver (glibc, search list, A and AAAA at once) sees v4 only.
        let ahosts = try lab.pod.exec(["getent", "ahosts", "bar-paris"], allowFailure: true)
        #expect(ahosts.contains("10.112.0.10") && !ahosts.contains("fd00:112::10"), "\(ahosts)")

        // curl prefers v6 when it has both (foo-berlin below); here it is given v4 only and
        // connects at once, never touching the v6 ClusterIP.
        for (name, body) in [("bar-paris", "paris-gw"), ("baz-paris", "paris-pod")] {
            let reply = try lab.curl("http://\(name)/")
            print("curl http://\(name)/ (v4 targets only): \(reply.remoteIP) connect \(Self.ms(reply.connect)) total \(Self.ms(reply.total))")
            #expect(reply.exit == 0 && reply.body == body && reply.remoteIP == "10.112.0.\(name == "bar-paris" ? 10 : 11)", "\(reply)")
            #expect(reply.connect < 0.5, "connected over v4 without waiting on v6: \(reply)")
        }
        let rejectedV6 = try lab.node.exec(["nft", "list", "set", "ip6", "mirror-agent", "rejected-services"])
        for ip in ["fd00:112::10", "fd00:112::11"] {
            #expect(Self.packets(of: ip, in: rejectedV6) == 0, "curl never tried \(ip): \(rejectedV6)")
        }
        // A client using the v6 ClusterIP anyway is still refused at once.
        let literal = try lab.curl("http://[fd00:112::10]/")
        #expect(literal.exit == 7 && literal.total < 1, "v6 ClusterIP refused at once: \(literal)")
        #expect(Self.packets(of: "fd00:112::10", in: try lab.node.exec(["nft", "list", "set", "ip6", "mirror-agent", "rejected-services"])) ?? 0 >= 1)

        // v4 and v6 gateway addresses: both families, and curl goes over v6.
        #expect(try addresses("foo-berlin", "AAAA") == ["fd00:112::30"])
        #expect(try addresses("foo-berlin", "A") == ["10.112.0.30"])
        let berlin = try lab.curl("http://foo-berlin/")
        print("curl http://foo-berlin/ (v4 and v6 targets): \(berlin.remoteIP) connect \(Self.ms(berlin.connect))")
        #expect(berlin.exit == 0 && berlin.body == "berlin-gw-v6" && berlin.remoteIP == "fd00:112::30", "\(berlin)")

        // A dead v4-only gateway: still A (its fast refusal), still no AAAA.
        #expect(try addresses("qux-madrid", "A") == ["10.112.0.40"])
        #expect(isNoData(try dig("qux-madrid", "AAAA")))
        let dead = try lab.curl("http://qux-madrid/")
        print("curl http://qux-madrid/ (dead v4 gateway): exit \(dead.exit) after \(Self.ms(dead.total))")
        #expect(dead.exit == 7 && dead.total < 1, "refused at once over v4: \(dead)")

        // dump says which ClusterIP DNS leaves out, and why.
        let dump = try lab.node.exec([binary, "dump", "--admin-socket", lab.work.appendingPathComponent("admin.sock").path])
        #expect(dump.contains("[fd00:112::10]:80/TCP (no v6 targets: not in DNS)"), "\(dump)")
        #expect(dump.contains("[fd00:112::40]:80/TCP (no v6 targets: not in DNS)"), "\(dump)")
        #expect(!dump.contains("[fd00:112::30]:80/TCP (no"), "\(dump)")

        // paris's gateway gains a v6 address: the v6 ClusterIP is given out (the table patched
        // for a cluster change alone), and curl now goes over v6.
        try Self.state(parisGateways: ["10.99.1.2", "fd99:1::2"]).write(to: state, atomically: true, encoding: .utf8)
        var advertised = false
        for _ in 0 ..< 50 {
            if try addresses("bar-paris", "AAAA") == ["fd00:112::10"] { advertised = true; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(advertised, "AAAA after the v6 gateway address: \(lab.agentLog)")
        #expect(lab.agentLog.contains("table=patched"), "\(lab.agentLog)")
        #expect(isNoData(try dig("baz-paris", "AAAA")), "the pods are still v4 only")
        let v6 = try lab.curl("http://bar-paris/")
        print("curl http://bar-paris/ after paris's v6 gateway address: \(v6.remoteIP) connect \(Self.ms(v6.connect))")
        #expect(v6.exit == 0 && v6.body == "paris-gw-v6" && v6.remoteIP == "fd00:112::10", "\(v6)")
    }

    static func ms(_ seconds: Double) -> String { String(format: "%.1f ms", seconds * 1000) }

    /// The packet counter of `ip . tcp . 80` in an `nft list set` listing (nil when absent).
    static func packets(of ip: String, in listing: String) -> Int? {
        guard let element = listing.range(of: "\(ip) . tcp . 80 counter packets ") else { return nil }
        return Int(listing[element.upperBound...].prefix { $0.isNumber })
    }
}

/// The namespaces, servers and agent of ``DualStackDNSTests``; everything it started is
/// killed by pid, and the namespaces removed, when it goes.
final class DualStackLab: @unchecked Sendable {
    let pod: TestNamespace
    let node: TestNamespace
    let paris: TestNamespace
    let berlin: TestNamespace
    let work: URL
    private let netnsConfig: URL
    private var pids: [Int32] = []

    init() throws {
        pod = try TestNamespace("ds-pod")
        node = try TestNamespace("ds-node")
        paris = try TestNamespace("ds-par")
        berlin = try TestNamespace("ds-ber")
        work = FileManager.default.temporaryDirectory.appendingPathComponent(pod.name)
        netnsConfig = URL(fileURLWithPath: "/etc/netns/\(pod.name)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        // A pod's resolv.conf (ip netns exec mounts it over /etc/resolv.conf).
        try FileManager.default.createDirectory(at: netnsConfig, withIntermediateDirectories: true)
        try """
            nameserver \(DualStackDNSTests.dnsAddress)
            search default.svc.cluster.local svc.cluster.local cluster.local
            options ndots:5 timeout:2 attempts:1

            """.write(to: netnsConfig.appendingPathComponent("resolv.conf"), atomically: true, encoding: .utf8)

        try link(node, "to-pod", ["10.0.0.1/24", "fd00::1/64"], pod, ["10.0.0.2/24", "fd00::2/64"])
        try link(node, "to-par", ["10.99.1.1/24", "fd99:1::1/64"], paris, ["10.99.1.2/24", "fd99:1::2/64", "10.20.1.5/32"])
        try link(node, "to-ber", ["10.99.2.1/24", "fd99:2::1/64"], berlin, ["10.99.2.2/24", "fd99:2::2/64"])
        try node.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"])
        try node.exec(["ip", "route", "add", "10.20.1.0/24", "dev", "to-par"])
        try pod.exec(["ip", "route", "add", "default", "via", "10.0.0.1"])
        try pod.exec(["ip", "-6", "route", "add", "default", "via", "fd00::1"])
        try paris.exec(["ip", "route", "add", "default", "via", "10.99.1.1"])
        try paris.exec(["ip", "-6", "route", "add", "default", "via", "fd99:1::1"])
        try berlin.exec(["ip", "route", "add", "default", "via", "10.99.2.1"])
        try berlin.exec(["ip", "-6", "route", "add", "default", "via", "fd99:2::1"])
        try serve(paris, "10.99.1.2", 4143, "paris-gw")
        try serve(paris, "fd99:1::2", 4143, "paris-gw-v6")
        try serve(paris, "10.20.1.5", 8080, "paris-pod")
        try serve(berlin, "10.99.2.2", 4143, "berlin-gw-v4")
        try serve(berlin, "fd99:2::2", 4143, "berlin-gw-v6")
    }

    deinit {
        // SIGKILL: the test runner's blocked-signal mask is inherited, so SIGTERM may not land.
        for pid in pids { kill(pid, SIGKILL) }
        try? FileManager.default.removeItem(at: netnsConfig)
        try? FileManager.default.removeItem(at: work)
    }

    /// A veth pair; IPv6 addresses skip duplicate address detection so they work at once.
    private func link(_ a: TestNamespace, _ aName: String, _ aAddresses: [String], _ b: TestNamespace, _ bAddresses: [String]) throws {
        try Shell.run(["ip", "-n", a.name, "link", "add", aName, "type", "veth", "peer", "name", "eth0", "netns", b.name])
        for (namespace, device, addresses) in [(a, aName, aAddresses), (b, "eth0", bAddresses)] {
            for address in addresses {
                try namespace.exec(["ip", "addr", "add", address, "dev", device] + (address.contains(":") ? ["nodad"] : []))
            }
            try namespace.exec(["ip", "link", "set", device, "up"])
        }
    }

    /// An HTTP server answering `name` on `address:port` (IPv4 or IPv6).
    private func serve(_ namespace: TestNamespace, _ address: String, _ port: Int, _ name: String) throws {
        if let pid = try NamespaceLab.launchPython(in: namespace, source: NamespaceLab.serverSource, [address, "\(port)", name]) { pids.append(pid) }
        let listening = address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
        for _ in 0 ..< 100 {
            if (try? namespace.exec(["ss", "-ltnH", "src", listening]))?.contains("LISTEN") == true { return }
            usleep(20_000)
        }
    }

    /// Starts `binary arguments…` in the node namespace, its output in `agent.log`. Started by
    /// a shell that first closes every inherited descriptor (see ``NamespaceLab/launchPython``).
    func startAgent(_ binary: String, _ arguments: [String]) throws {
        let closeAll = "for f in /proc/$$/fd/*; do n=${f##*/}; [ \"$n\" -gt 2 ] && eval \"exec $n>&-\" 2>/dev/null; done; "
        let script = closeAll + "log=$1; shift; \"$@\" </dev/null >\"$log\" 2>&1 & echo $!"
        let output = try node.exec(["bash", "-c", script, "bash", work.appendingPathComponent("agent.log").path, binary] + arguments)
        if let pid = Int32(output.trimmingCharacters(in: .whitespacesAndNewlines)) { pids.append(pid) }
    }

    var agentLog: String { (try? String(contentsOf: work.appendingPathComponent("agent.log"), encoding: .utf8)) ?? "" }

    struct CurlReply: CustomStringConvertible {
        var exit: Int32
        var body: String
        var remoteIP: String
        /// Seconds from curl's start to the TCP connection (name lookup included), and in all.
        var connect: Double
        var total: Double
        var description: String { "exit \(exit) body \(body) remote \(remoteIP) connect \(connect) s total \(total) s" }
    }

    /// Real curl from the pod, resolving through the pod's resolv.conf.
    func curl(_ url: String) throws -> CurlReply {
        let marker = "\n%{exitcode} %{remote_ip} %{time_connect} %{time_total}"
        let output = try pod.exec(["curl", "-s", "--max-time", "5", "-w", marker, url], allowFailure: true)
        var lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        // remote_ip is empty when no connection was made.
        let fields = (lines.popLast() ?? "").split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard fields.count == 4 else { return CurlReply(exit: -1, body: output, remoteIP: "", connect: .infinity, total: .infinity) }
        return CurlReply(exit: Int32(fields[0]) ?? -1, body: lines.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines),
                         remoteIP: fields[1], connect: Double(fields[2]) ?? .infinity, total: Double(fields[3]) ?? .infinity)
    }
}
