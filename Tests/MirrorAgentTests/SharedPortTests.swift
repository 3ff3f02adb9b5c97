import Foundation
import Logging
import NIOCore
import Testing
@testable import MirrorAgent
#if canImport(Glibc)
import Glibc
#endif

/// The agent's HTTP port shared with a newer agent during a surged rollout (SO_REUSEPORT):
/// how another process's listener is recognised in /proc/net/tcp, the hand-over (this
/// process stops accepting once the other listens) and taking the port back once the other is
/// gone. The other process here is a small python listener; e2e/surge.sh does it with agents.
@Suite("Shared HTTP port: hand-over to a newer process and back", .serialized)
struct SharedPortTests {
    @Test("addresses as /proc/net/tcp prints them; only LISTEN rows of that exact address count")
    func procTable() throws {
        let loopback = try SocketAddress(ipAddress: "127.0.0.1", port: 9153)
        let local = try #require(ListeningSockets.procLocalAddress(loopback))
        // The kernel prints each 32-bit word as the machine reads it (little-endian here).
        #expect(local == "0100007F:23C1")
        #expect(ListeningSockets.procLocalAddress(try SocketAddress(ipAddress: "10.99.1.1", port: 80)) == "0101630A:0050")
        #expect(ListeningSockets.procLocalAddress(try SocketAddress(ipAddress: "::1", port: 9153))
                == "00000000000000000000000001000000:23C1")
        let table = """
              sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
               0: 0100007F:23C1 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0
               1: 0100007F:23C1 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1 0000000000000000 100 0 0 10 0
               2: 0100007F:23C1 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0000000000000000 20 4 30 10 -1
               3: 00000000:23C1 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1004 1 0000000000000000 100 0 0 10 0
               4: 0100007F:23C2 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1005 1 0000000000000000 100 0 0 10 0

            """
        #expect(ListeningSockets.listeners(in: table, local: local) == [1001, 1002])
    }

    @Test("another process on the port: the listener hands it over, then takes it back when that process is gone",
          .timeLimit(.minutes(1)))
    func handOverAndBack() async throws {
        var logger = Logger(label: "shared-port-test")
        logger.logLevel = .debug
        let channel = try await TextHTTPServer.serve(on: try SocketAddress(ipAddress: "127.0.0.1", port: 0), name: "test endpoint",
                                                     logger: logger) { _ in .ok("ours\n") }
        let port = try #require(channel.localAddress?.port)
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: port)
        #expect(ListeningSockets.inodes(listeningOn: address).count == 1)
        #expect(!ListeningSockets.othersListen(on: address), "this process's own listener counts as another's")
        #expect(try get(port) == "ours")

        // Nobody else: the hand-over keeps the port.
        let kept = await TextHTTPServer.handOverListeners(patience: .milliseconds(300), logger: logger)
        #expect(kept.isEmpty)
        #expect(channel.isActive)
        if !channel.isActive { try? await channel.close() }

        // A newer process binds the same address (SO_REUSEPORT) and answers "other".
        let other = try startOtherListener(port: port)
        // SIGKILL: a child of the test runner may inherit a blocked SIGTERM.
        defer { if other.isRunning { kill(other.processIdentifier, SIGKILL); other.waitUntilExit() } }
        #expect(ListeningSockets.othersListen(on: address))
        let handed = await TextHTTPServer.handOverListeners(patience: .seconds(5), logger: logger)
        #expect(handed.map(\.name) == ["test endpoint"])
        #expect(!channel.isActive)
        #expect(ListeningSockets.inodes(listeningOn: address).count == 1)
        for _ in 0..<10 { #expect(try get(port) == "other", "a connection reached the process that handed the port over") }

        // The newer process goes away: the port is taken back, with the same answers.
        let back = Task { await TextHTTPServer.reclaim(handed, poll: .milliseconds(100), logger: logger) }
        kill(other.processIdentifier, SIGKILL)
        other.waitUntilExit()
        #expect(await back.value.count == 1)
        #expect(ListeningSockets.inodes(listeningOn: address).count == 1)
        #expect(!ListeningSockets.othersListen(on: address))
        #expect(try get(port) == "ours")
        for channel in await back.value { try? await channel.close() }
    }

    /// A python listener on 127.0.0.1:`port` with SO_REUSEPORT that answers every request "other".
    private func startOtherListener(port: Int) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", """
            import socket, sys
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(("127.0.0.1", int(sys.argv[1])))
            s.listen(16)
            print("LISTENING", flush=True)
            while True:
                c, _ = s.accept()
                c.recv(4096)
                c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 6\\r\\nConnection: close\\r\\n\\r\\nother\\n")
                c.close()
            """, "\(port)"]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let line = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        try #require(line.contains("LISTENING"), "python listener did not start: \(line)")
        return process
    }

    /// GET / on 127.0.0.1:`port` with a fresh connection; the body, trimmed.
    private func get(_ port: Int) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["curl", "-sS", "--max-time", "2", "http://127.0.0.1:\(port)/"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
