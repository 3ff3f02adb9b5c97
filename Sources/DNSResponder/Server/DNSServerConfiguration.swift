import NIOCore

/// How a ``DNSServer`` listens and whom it answers.
public struct DNSServerConfiguration: Sendable {
    /// Addresses to serve on, UDP and TCP. A wildcard (`0.0.0.0`, `::`) is expanded to every
    /// local address of that family at start, so replies always leave from the address the
    /// query arrived on.
    public var listen: [SocketAddress]
    /// Clients allowed to query; others get REFUSED.
    public var access: DNSAccessList
    public var forwarding: DNSForwardingConfiguration
    /// Who reads the UDP sockets.
    public var udpReading: DNSUDPReading
    /// Datagrams read per system call (`recvmmsg`).
    public var udpVectorReadCount: Int
    /// The largest query accepted over UDP.
    public var udpReceiveBufferSize: Int
    /// A TCP connection with nothing to read or write for this long is closed.
    public var tcpIdleTimeout: TimeAmount
    /// TCP connections open at once; beyond it new connections are closed on accept.
    public var maximumTCPConnections: Int

    public init(listen: [SocketAddress], access: DNSAccessList = .standard(), forwarding: DNSForwardingConfiguration,
                udpReading: DNSUDPReading = .dedicatedThreads, udpVectorReadCount: Int = 8, udpReceiveBufferSize: Int = 2048, tcpIdleTimeout: TimeAmount = .seconds(10),
                maximumTCPConnections: Int = 256) {
        self.listen = listen
        self.access = access
        self.forwarding = forwarding
        self.udpReading = udpReading
        self.udpVectorReadCount = udpVectorReadCount
        self.udpReceiveBufferSize = udpReceiveBufferSize
        self.tcpIdleTimeout = tcpIdleTimeout
        self.maximumTCPConnections = maximumTCPConnections
    }
}

/// Why the server could not start.
public struct DNSServerError: Error, CustomStringConvertible {
    public var address: String
    public var reason: String

    public var description: String { "cannot serve DNS on \(address): \(reason)" }
}

/// Who reads a UDP listener socket.
public enum DNSUDPReading: String, Sendable, CaseIterable, CustomStringConvertible {
    /// A thread per socket blocked in `recvmmsg`, answering without NIO's per-datagram
    /// work (the default; see ``DNSDatagramReader``).
    case dedicatedThreads = "threads"
    /// A NIO datagram channel per socket on its event loop.
    case eventLoops = "event-loops"

    public var description: String { rawValue }
}
