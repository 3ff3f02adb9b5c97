import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// End to end: the real `mirror-agent run` binary serving DNS from a state file, with a
/// real unbound as upstream, queried by dig and by glibc's resolver (`getent`) configured
/// like a Kubernetes pod (search list, ndots:5). Everything runs inside a network namespace
/// the test creates, on its loopback, so the agent can own port 53 there.
@Suite("mirror-agent run: DNS end to end", .serialized)
struct DNSRunTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("dig and getent in a pod-like namespace; a bad edit keeps the previous answers; a good edit is served")
    func endToEnd() async throws {
        guard getuid() == 0 else {
            print("skipping DNSRunTests.endToEnd: needs root to create a network namespace")
            return
        }
        let binary = Self.packageRoot.appendingPathComponent(".build/debug/mirror-agent").path
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build mirror-agent first (swift build): \(binary) is missing")

        let namespace = "dnsrun-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        let work = FileManager.default.temporaryDirectory.appendingPathComponent(namespace)
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let netnsConfig = URL(fileURLWithPath: "/etc/netns/\(namespace)")
        var processes: [Process] = []
        defer {
            for process in processes where process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
            _ = try? shell(["ip", "netns", "del", namespace])
            try? FileManager.default.removeItem(at: netnsConfig)
            try? FileManager.default.removeItem(at: work)
        }
        try shell(["ip", "netns", "add", namespace])
        try shell(["ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up"])
        // A node-local DNS address (NodeLocal DNSCache's), here on lo since containers may
        // lack the dummy link type; the agent listens on the wildcard and must answer from
        // whichever address was asked.
        try shell(["ip", "netns", "exec", namespace, "ip", "addr", "add", "169.254.20.10/32", "dev", "lo"])
        try FileManager.default.createDirectory(at: netnsConfig, withIntermediateDirectories: true)
        try """
            nameserver 169.254.20.10
            search default.svc.cluster.local svc.cluster.local cluster.local
            options ndots:5 timeout:2 attempts:1

            """.write(to: netnsConfig.appendingPathComponent("resolv.conf"), atomically: true, encoding: .utf8)

        // The upstream: unbound standing in for the cluster DNS, authoritative for
        // cluster.local (so search-list misses are quick NXDOMAINs) and example.test.
        let unboundConf = work.appendingPathComponent("unbound.conf")
        try """
            server:
              interface: 127.0.0.1
              port: 5300
              do-daemonize: no
              use-syslog: no
              username: ""
              chroot: ""
              directory: "\(work.path)"
              pidfile: ""
              num-threads: 1
              access-control: 127.0.0.0/8 allow
              local-zone: "cluster.local." static
              local-data: "cluster.local. 30 IN SOA ns.cluster.local. admin.cluster.local. 1 3600 900 86400 30"
              local-data: "kubernetes.default.svc.cluster.local. 30 IN A 10.96.0.1"
              local-zone: "10.in-addr.arpa." static
              local-zone: "example.test." static
              local-data: "example.test. 30 IN SOA ns.example.test. admin.example.test. 1 3600 900 86400 30"
              local-data: "www.example.test. 300 IN A 192.0.2.7"

            """.write(to: unboundConf, atomically: true, encoding: .utf8)
        processes.append(try launch(["ip", "netns", "exec", namespace, "/usr/sbin/unbound", "-d", "-c", unboundConf.path], log: work.appendingPathComponent("unbound.log")))

        let state = work.appendingPathComponent("state.yaml")
        let example = try String(contentsOf: Self.packageRoot.appendingPathComponent("examples/two-clusters.yaml"), encoding: .utf8)
        try example.write(to: state, atomically: true, encoding: .utf8)
        let agentLog = work.appendingPathComponent("agent.log")
        processes.append(try launch(["ip", "netns", "exec", namespace, binary, "run", "--feed", "file:\(state.path)",
                                     "--dns-listen", "0.0.0.0:53", "--upstream", "127.0.0.1:5300", "--ttl", "30",
                                     "--no-nftables", "--admin-socket", work.appendingPathComponent("admin.sock").path], log: agentLog))

        func dig(_ arguments: [String], server: String = "127.0.0.1") throws -> String {
            try shell(["ip", "netns", "exec", namespace, "dig", "@\(server)", "+time=3", "+tries=1"] + arguments, check: false).output
        }
        func getent(_ arguments: [String]) throws -> (status: Int32, output: String) {
            try shell(["ip", "netns", "exec", namespace, "getent"] + arguments, check: false)
        }
        // Ready when both answer.
        var ready = false
        for _ in 0..<100 {
            if try dig(["+short", "bar-paris.default.svc.cluster.local"]).contains("10.112.0.10"),
               try dig(["+short", "www.example.test"]).contains("192.0.2.7") {
                ready = true
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        try #require(ready, "agent or unbound did not come up: \((try? String(contentsOf: agentLog, encoding: .utf8)) ?? "")")

        // dig: UDP, TCP, no EDNS, small buffer, EDNS version 1; on both local addresses
        // (dig rejects a reply from another address than it asked).
        let udp = try dig(["bar-paris.default.svc.cluster.local"])
        #expect(udp.contains("status: NOERROR") && udp.contains("flags: qr aa rd ra"))
        #expect(squeezed(udp).contains("bar-paris.default.svc.cluster.local. 30 IN A 10.112.0.10"), "--ttl 30 not applied: \(udp)")
        let nodeLocal = try dig(["bar-paris.default.svc.cluster.local"], server: "169.254.20.10")
        #expect(nodeLocal.contains("status: NOERROR") && nodeLocal.contains("SERVER: 169.254.20.10#53"), "\(nodeLocal)")
        #expect(try dig(["+tcp", "+short", "bar-paris.default.svc.cluster.local"], server: "169.254.20.10").contains("10.112.0.10"))
        let negative = try dig(["bar-paris.default.svc.cluster.local", "AAAA"])
        #expect(squeezed(negative).contains("cluster.local. 5 IN SOA"), "negative TTL not capped at 5 s: \(negative)")
        #expect(try dig(["+tcp", "_http._tcp.baz-paris.default.svc.cluster.local", "SRV"]).contains("0 100 80 baz-paris.default.svc.cluster.local."))
        #expect(!(try dig(["+noedns", "web-federated.default.svc.cluster.local"]).contains("OPT PSEUDOSECTION")))
        #expect(try dig(["+bufsize=512", "+short", "baz-0.baz-paris.default.svc.cluster.local"]).contains("10.20.1.5"))
        #expect(try dig(["+edns=1", "+noednsneg", "bar-paris.default.svc.cluster.local"]).contains("status: BADVERS"))
        #expect(try dig(["+short", "web.default.svc.clusterset.local"]).contains("10.112.0.12"))
        #expect(try dig(["+short", "dns-version.clusterset.local", "TXT"]).contains("\"1.0.0\""))
        #expect(try dig(["+short", "-x", "10.112.0.11"]).contains("baz-paris.default.svc.cluster.local."))
        #expect(try dig(["nope.bar-paris.default.svc.cluster.local"]).contains("status: NXDOMAIN"))
        #expect(try dig(["kubernetes.default.svc.cluster.local"]).contains("10.96.0.1"))

        // glibc, the way a pod resolves: short names through the search list, A and AAAA
        // in parallel (ahosts), forwarded names after the search list is exhausted.
        let short = try getent(["hosts", "bar-paris"])
        #expect(short.status == 0 && short.output.contains("10.112.0.10"), "\(short.output)")
        let withNamespace = try getent(["ahosts", "baz-paris.default"])
        #expect(withNamespace.status == 0 && withNamespace.output.contains("10.112.0.11"), "\(withNamespace.output)")
        let federated = try getent(["hosts", "web-federated"])
        #expect(federated.output.contains("10.112.0.12"), "\(federated.output)")
        let forwarded = try getent(["hosts", "www.example.test"])
        #expect(forwarded.status == 0 && forwarded.output.contains("192.0.2.7"), "\(forwarded.output)")
        let cluster = try getent(["hosts", "kubernetes"])
        #expect(cluster.output.contains("10.96.0.1"), "\(cluster.output)")
        let missing = try getent(["hosts", "nope-paris"])
        #expect(missing.status == 2, "\(missing.output)")

        // A bad edit is rejected and the previous answers stay.
        try (example + "\n  - name: broken\n    namespace: default\n    cluster: madrid\n    mode: gateway\n    ips: [\"10.112.0.10\"]\n    ports: [{port: 80}]\n")
            .write(to: state, atomically: true, encoding: .utf8)
        try await Task.sleep(for: .milliseconds(1500))
        #expect(try dig(["+short", "bar-paris.default.svc.cluster.local"]).contains("10.112.0.10"))
        let log = (try? String(contentsOf: agentLog, encoding: .utf8)) ?? ""
        #expect(log.contains("state file rejected"))

        // A good edit is served within a poll interval or two.
        try example.replacingOccurrences(of: "10.112.0.10", with: "10.112.0.42").write(to: state, atomically: true, encoding: .utf8)
        var updated = false
        for _ in 0..<30 {
            if try dig(["+short", "bar-paris.default.svc.cluster.local"]).contains("10.112.0.42") {
                updated = true
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(updated)
        #expect(try getent(["hosts", "bar-paris"]).output.contains("10.112.0.42"))
        // One service changed: the table was patched, not rebuilt; the old PTR is gone.
        #expect(((try? String(contentsOf: agentLog, encoding: .utf8)) ?? "").contains("table=patched"))
        #expect(try dig(["+short", "-x", "10.112.0.42"]).contains("bar-paris.default.svc.cluster.local."))
        let oldReverse = try dig(["-x", "10.112.0.10"])
        #expect(!oldReverse.contains("bar-paris") && oldReverse.contains("status: NXDOMAIN"), "\(oldReverse)")
    }
}

extension DNSRunTests {
    @Test("bad DNS flags are refused with a message naming the flag")
    func flagValidation() throws {
        let binary = Self.packageRoot.appendingPathComponent(".build/debug/mirror-agent").path
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build mirror-agent first (swift build): \(binary) is missing")
        let state = Self.packageRoot.appendingPathComponent("examples/two-clusters.yaml").path
        let cases: [([String], String)] = [
            ([], "--upstream is required"),
            (["--upstream", "not-an-address"], "--upstream not-an-address"),
            (["--upstream", "127.0.0.1:53", "--dns-listen", "127.0.0.1:99999"], "--dns-listen 127.0.0.1:99999"),
            (["--upstream", "127.0.0.1:53", "--allow", "10.0.0.0/40"], "--allow 10.0.0.0/40"),
            (["--upstream", "127.0.0.1:53", "--dns-threads", "0"], "--dns-threads 0"),
        ]
        for (arguments, message) in cases {
            let result = try shell([binary, "run", "--feed", "file:\(state)"] + arguments, check: false)
            #expect(result.status != 0, "\(arguments) accepted")
            #expect(result.output.contains(message), "\(arguments): \(result.output)")
        }
    }
}

/// `text` with every run of whitespace turned into one space (dig aligns with tabs).
private func squeezed(_ text: String) -> String {
    text.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
}

/// Runs a command to completion; throws when it fails and `check` is set.
@discardableResult
private func shell(_ arguments: [String], check: Bool = true) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("shell-\(UUID().uuidString)")
    _ = FileManager.default.createFile(atPath: output.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: output) }
    let handle = try FileHandle(forWritingTo: output)
    defer { try? handle.close() }
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
    let deadline = Date().addingTimeInterval(20)
    while process.isRunning, Date() < deadline { usleep(5_000) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    let text = String(decoding: (try? Data(contentsOf: output)) ?? Data(), as: UTF8.self)
    if check, process.terminationStatus != 0 {
        throw ShellError(description: "\(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(text)")
    }
    return (process.terminationStatus, text)
}

/// Starts a long-running command with its output in `log`.
private func launch(_ arguments: [String], log: URL) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    _ = FileManager.default.createFile(atPath: log.path, contents: nil)
    let handle = try FileHandle(forWritingTo: log)
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
    return process
}

private struct ShellError: Error, CustomStringConvertible {
    var description: String
}
