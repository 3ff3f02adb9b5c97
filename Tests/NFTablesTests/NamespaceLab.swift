import Foundation

/// Test namespaces wired with veth pairs, and tiny HTTP servers in them that answer with
/// their own name, so a client sees which target it reached. Servers die with the lab.
final class NamespaceLab: @unchecked Sendable {
    private var serverPIDs: [Int32] = []

    deinit {
        // SIGKILL: the test runner's blocked-signal mask is inherited, so SIGTERM may not land.
        for pid in serverPIDs { kill(pid, SIGKILL) }
    }

    func link(_ a: TestNamespace, _ aName: String, _ aAddress: String, _ b: TestNamespace, _ bName: String, _ bAddresses: [String]) throws {
        try Shell.run(["ip", "-n", a.name, "link", "add", aName, "type", "veth", "peer", "name", bName, "netns", b.name])
        try a.exec(["ip", "addr", "add", aAddress, "dev", aName])
        try a.exec(["ip", "link", "set", aName, "up"])
        for address in bAddresses { try b.exec(["ip", "addr", "add", address, "dev", bName]) }
        try b.exec(["ip", "link", "set", bName, "up"])
    }

    /// Starts `python3 program arguments…` in the background in `namespace` (the program is a
    /// path, or inline source after `-c`) and returns its pid. Started by a shell that first
    /// closes every inherited descriptor: Foundation's Process watches a socket the child
    /// inherits to learn that it exited, and a daemon holding it would hang the test.
    static func launchPython(in namespace: TestNamespace, source: String, _ arguments: [String]) throws -> Int32? {
        let closeAll = "for f in /proc/$$/fd/*; do n=${f##*/}; [ \"$n\" -gt 2 ] && eval \"exec $n>&-\" 2>/dev/null; done; "
        let script = closeAll + "/usr/bin/python3 -c \"$0\" \(arguments.joined(separator: " ")) </dev/null >/dev/null 2>&1 & echo $!"
        return Int32(try namespace.exec(["bash", "-c", script, source]).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// A tiny HTTP server answering `name` on `address:port`.
    func serve(_ namespace: TestNamespace, _ address: String, _ port: Int, _ name: String) throws {
        try start(namespace, source: Self.serverSource, [address, "\(port)", name], until: ["ss", "-ltnH", "src", "\(address):\(port)"], shows: "LISTEN")
    }

    /// A UDP responder on `address:port` answering every datagram with `name`.
    func serveUDP(_ namespace: TestNamespace, _ address: String, _ port: Int, _ name: String) throws {
        let program = "import socket,sys\ns=socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET,socket.SOCK_DGRAM)\ns.setsockopt(socket.SOL_SOCKET,33,8<<20)\ns.bind((sys.argv[1],int(sys.argv[2])))\nwhile True:\n d,p=s.recvfrom(2048)\n s.sendto(sys.argv[3].encode(),p)\n"
        try start(namespace, source: program, [address, "\(port)", name],
                  until: ["ss", "-lunH", "src", "\(address.contains(":") ? "[\(address)]" : address):\(port)"], shows: address)
    }

    /// Launches a server and waits (bounded) until `check`'s output shows `text`.
    private func start(_ namespace: TestNamespace, source: String, _ arguments: [String], until check: [String], shows text: String) throws {
        if let pid = try Self.launchPython(in: namespace, source: source, arguments) { serverPIDs.append(pid) }
        for _ in 0 ..< 100 {
            if (try? namespace.exec(check))?.contains(text) == true { return }
            usleep(20_000)
        }
    }

    /// The HTTP server: reads the request head, answers `200` with the server's name, closes.
    /// IPv4 or IPv6 by the address given.
    static let serverSource = """
            import socket, sys
            address, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
            server = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
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

    /// `curl` from `namespace` to `url`: (exit status, body, seconds taken).
    func curl(from namespace: TestNamespace, _ url: String, maxTime: Double = 3) throws -> (status: Int32, body: String, seconds: Double) {
        let start = Date()
        let marker = "\n%{exitcode}"
        let output = try namespace.exec(["curl", "-s", "--max-time", "\(maxTime)", "-w", marker, url], allowFailure: true)
        let seconds = Date().timeIntervalSince(start)
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        let status = Int32(lines.last ?? "") ?? -1
        let body = lines.dropLast().joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        return (status, body, seconds)
    }

}
