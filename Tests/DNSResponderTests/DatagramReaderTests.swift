#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix
import Testing
@testable import DNSResponder

/// The dedicated UDP readers: bursts from many clients, replies to the right sender,
/// counters, and a clean stop.
@Suite("DNS UDP readers (recvmmsg/sendmmsg threads)")
struct DatagramReaderTests {
    @Test("a burst from several clients is answered, each reply to its own sender and query ID", arguments: DNSUDPReading.allCases)
    func burstFromManyClients(reading: DNSUDPReading) async throws {
        let fixture = try await ServerFixture.start(upstreams: [], reading: reading)
        defer { Task { await fixture.server.close() } }
        let clients = (0..<6).map { _ in RawSocket.udp() }
        defer { clients.forEach { close($0) } }
        for client in clients { RawSocket.setTimeout(client, seconds: 2) }
        // Sent back to back, so the server reads several datagrams per recvmmsg.
        for round in 0..<10 {
            for (index, client) in clients.enumerated() {
                let id = UInt16(round * 100 + index)
                RawSocket.send(client, try TableFixture.query("bar-paris.default.svc.cluster.local", .a, id: id), to: fixture.port)
            }
        }
        for (index, client) in clients.enumerated() {
            var ids: [UInt16] = []
            for _ in 0..<10 {
                guard let (bytes, port) = RawSocket.receive(client) else { break }
                #expect(port == fixture.port)
                let message = try DNSMessage(parsing: bytes)
                #expect(message.header.responseCode == .noError)
                #expect(!message.answers.isEmpty)
                ids.append(message.header.id)
            }
            #expect(ids.sorted() == (0..<10).map { UInt16($0 * 100 + index) }, "client \(index)")
        }
        let statistics = await fixture.server.statistics()
        #expect(statistics.answeredByCode["NOERROR"] == 60)
    }

    @Test("a malformed datagram is dropped and counted; the next query is answered")
    func malformedThenGood() async throws {
        let fixture = try await ServerFixture.start(upstreams: [])
        defer { Task { await fixture.server.close() } }
        let client = RawSocket.udp()
        defer { close(client) }
        RawSocket.setTimeout(client, seconds: 2)
        RawSocket.send(client, [0x12, 0x34, 0x01], to: fixture.port)
        RawSocket.send(client, try TableFixture.query("bar-paris.default.svc.cluster.local", .a, id: 7), to: fixture.port)
        let reply = try #require(RawSocket.receive(client))
        #expect(try DNSMessage(parsing: reply.bytes).header.id == 7)
        let statistics = await fixture.server.statistics()
        #expect(statistics.dropped == 1)
    }

    @Test("after close the readers are gone and the port is free")
    func stop() async throws {
        let fixture = try await ServerFixture.start(upstreams: [])
        let client = RawSocket.udp()
        defer { close(client) }
        RawSocket.setTimeout(client, seconds: 0.3)
        RawSocket.send(client, try TableFixture.query("bar-paris.default.svc.cluster.local", .a), to: fixture.port)
        #expect(RawSocket.receive(client) != nil)
        await fixture.server.close()
        RawSocket.send(client, try TableFixture.query("bar-paris.default.svc.cluster.local", .a), to: fixture.port)
        #expect(RawSocket.receive(client) == nil)
        // Nobody holds the port any more: a plain socket (no SO_REUSEPORT) can bind it.
        let plain = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(plain) }
        var address = RawSocket.loopback(port: fixture.port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(plain, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(bound == 0, "port \(fixture.port) still held: errno \(errno)")
    }

    @Test("a UDP port held by another server without SO_REUSEPORT is refused with an error naming the address")
    func portInUse() async throws {
        // A plain UDP socket (no SO_REUSEPORT) on a free port, as another DNS server would hold it.
        let holder = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(holder) }
        var address = RawSocket.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(holder, $0, length) == 0 && getsockname(holder, $0, &length) == 0 }
        }
        try #require(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let configuration = DNSServerConfiguration(listen: [try SocketAddress(ipAddress: "127.0.0.1", port: port)],
                                                   forwarding: DNSForwardingConfiguration(upstreams: []))
        do {
            let server = try await DNSServer.start(configuration: configuration, table: try TableFixture.table(),
                                                   group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "dns-test"))
            await server.close()
            Issue.record("the server started on a port another socket holds")
        } catch {
            let text = "\(error)"
            #expect(text.contains("127.0.0.1:\(port)") && text.contains("Address already in use"), "\(text)")
        }
    }
}
