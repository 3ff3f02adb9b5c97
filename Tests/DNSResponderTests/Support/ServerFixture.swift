import Logging
import NIOCore
import NIOPosix
@testable import DNSResponder

/// A DNSServer on a free loopback port, with the fixture table, for one test.
struct ServerFixture {
    let server: DNSServer
    let port: Int

    static func start(upstreams: [Int], timeout: TimeAmount = .seconds(2), maximumInFlight: Int = 1024,
                      access: DNSAccessList = .standard(), tcpIdleTimeout: TimeAmount = .seconds(10),
                      maximumTCPConnections: Int = 256, table: DNSRecordTable? = nil,
                      reading: DNSUDPReading = .dedicatedThreads) async throws -> ServerFixture {
        var logger = Logger(label: "dns-test")
        logger.logLevel = .warning
        let configuration = DNSServerConfiguration(
            listen: [try SocketAddress(ipAddress: "127.0.0.1", port: 0)], access: access,
            forwarding: DNSForwardingConfiguration(upstreams: try upstreams.map { try SocketAddress(ipAddress: "127.0.0.1", port: $0) },
                                                   timeout: timeout, maximumInFlight: maximumInFlight),
            udpReading: reading, tcpIdleTimeout: tcpIdleTimeout, maximumTCPConnections: maximumTCPConnections)
        let server = try await DNSServer.start(configuration: configuration, table: try table ?? TableFixture.table(),
                                               group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        guard let port = server.localAddresses.first?.port else { throw TestSetupError("server bound no address") }
        return ServerFixture(server: server, port: port)
    }

    func dig(_ arguments: [String]) throws -> String { try DNSResponderTests.dig(arguments, port: port) }
}
