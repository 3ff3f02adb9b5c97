#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import NIOCore
import NIOPosix

/// The DNS responder's network face: UDP and TCP listeners on every configured address,
/// answering from the current ``DNSRecordTable`` and forwarding the rest.
///
/// UDP: one socket per event loop per address, all bound with SO_REUSEPORT so the kernel
/// spreads clients over them; each socket reads bursts of datagrams with `recvmmsg` and
/// sends the burst's replies at once — by default on a thread of its own
/// (``DNSDatagramReader``), or as a NIO channel on its loop (``DNSUDPReading``). TCP: one
/// listener per address, connections spread over the loops, capped in number and closed
/// when idle. Cache misses are forwarded by the loops.
public final class DNSServer: Sendable {
    private let states: [NIOLoopBound<DNSLoopState>]
    private let upstreamHealth: DNSUpstreamHealthBoard
    private let cache: DNSSharedResponseCache
    private let channels: [any Channel]
    private let readers: [DNSDatagramReader]
    /// The addresses actually bound (with the real port when 0 was asked).
    public let localAddresses: [SocketAddress]

    private init(states: [NIOLoopBound<DNSLoopState>], upstreamHealth: DNSUpstreamHealthBoard, cache: DNSSharedResponseCache,
                 channels: [any Channel], readers: [DNSDatagramReader], localAddresses: [SocketAddress]) {
        self.states = states
        self.upstreamHealth = upstreamHealth
        self.cache = cache
        self.channels = channels
        self.readers = readers
        self.localAddresses = localAddresses
    }

    /// Binds every listener and starts serving `table` (nil: SERVFAIL until the first
    /// ``replaceTable(_:)``).
    ///
    /// - Parameter sharing: another server (other listen addresses, same upstreams) whose
    ///   forwarding cache and upstream health this one uses too.
    /// - Throws: ``DNSServerError`` naming the address that could not be bound.
    public static func start(configuration: DNSServerConfiguration, table: DNSRecordTable?, group: MultiThreadedEventLoopGroup,
                             sharing: DNSServer? = nil, logger: Logger) async throws -> DNSServer {
        let loops = Array(group.makeIterator())
        var states: [NIOLoopBound<DNSLoopState>] = []
        var statesByLoop: [ObjectIdentifier: NIOLoopBound<DNSLoopState>] = [:]
        let processor = DNSQueryProcessor(access: configuration.access)
        let cache = sharing?.cache ?? DNSSharedResponseCache(capacity: configuration.forwarding.cacheEntries)
        let health = sharing?.upstreamHealth ?? DNSUpstreamHealthBoard(upstreams: configuration.forwarding.upstreams)
        for loop in loops {
            let state = try await loop.submit {
                NIOLoopBound(DNSLoopState(answerer: DNSAnswerer(table: table, processor: processor, cache: cache),
                                          forwarder: DNSForwarder(loop: loop, configuration: configuration.forwarding, cache: cache, health: health,
                                                                  share: loops.count, logger: logger)),
                             eventLoop: loop)
            }.get()
            states.append(state)
            statesByLoop[ObjectIdentifier(loop)] = state
        }

        var channels: [any Channel] = []
        var readers: [DNSDatagramReader] = []
        var bound: [SocketAddress] = []
        do {
            for address in try expand(configuration.listen) {
                // With port 0 the TCP listener picks the port and UDP joins it; the port may
                // already be taken for UDP, so try a few times.
                var attempt = 0
                while true {
                    var forAddress: [any Channel] = []
                    var readersForAddress: [DNSDatagramReader] = []
                    do {
                        let tcp = try await bindTCP(address, configuration: configuration, group: group, states: statesByLoop)
                        forAddress.append(tcp)
                        let actual = tcp.localAddress ?? address
                        for (index, loop) in loops.enumerated() {
                            switch configuration.udpReading {
                            case .eventLoops:
                                forAddress.append(try await bindUDP(actual, configuration: configuration, loop: loop, state: states[index]))
                            case .dedicatedThreads:
                                readersForAddress.append(try DNSDatagramReader(
                                    address: actual, answerer: DNSAnswerer(table: table, processor: processor, cache: cache),
                                    forwarding: states[index], burst: configuration.udpVectorReadCount,
                                    receiveSize: configuration.udpReceiveBufferSize, name: "dns-udp-\(readers.count + index)", logger: logger))
                            }
                        }
                        channels += forAddress
                        readers += readersForAddress
                        bound.append(actual)
                        break
                    } catch where address.port == 0 && attempt < 8 {
                        for channel in forAddress { try? await channel.close() }
                        for reader in readersForAddress { reader.stop() }
                        attempt += 1
                    } catch {
                        for channel in forAddress { try? await channel.close() }
                        for reader in readersForAddress { reader.stop() }
                        throw error
                    }
                }
            }
        } catch {
            for channel in channels { try? await channel.close() }
            for reader in readers { reader.stop() }
            throw DNSServerError(address: configuration.listen.map { "\($0)" }.joined(separator: ", "), reason: "\(error)")
        }
        logger.info("serving DNS", metadata: ["addresses": "\(bound.map { "\($0)" }.joined(separator: ", "))",
                                               "loops": "\(loops.count)", "udp": "\(configuration.udpReading)",
                                               "upstreams": "\(configuration.forwarding.upstreams.count)"])
        return DNSServer(states: states, upstreamHealth: health, cache: cache, channels: channels, readers: readers, localAddresses: bound)
    }

    /// One UDP socket on `loop`, sharing `address` with the other loops' (SO_REUSEPORT).
    private static func bindUDP(_ address: SocketAddress, configuration: DNSServerConfiguration, loop: any EventLoop,
                                state: NIOLoopBound<DNSLoopState>) async throws -> any Channel {
        try await DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(ChannelOptions.Types.SocketOption(level: .socket, name: NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: 1)
            .channelOption(.datagramVectorReadMessageCount, value: configuration.udpVectorReadCount)
            // One recvmmsg per readiness event: epoll is level-triggered, so a socket with
            // more waiting wakes the loop again, and the empty recvmmsg that would end a
            // longer read loop is saved.
            .channelOption(.maxMessagesPerRead, value: 1)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: configuration.udpReceiveBufferSize))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(DNSUDPHandler(state: state.value))
                }
            }
            .bind(to: address).get()
    }

    /// The TCP listener for `address`; connections are served by their loop's state.
    private static func bindTCP(_ address: SocketAddress, configuration: DNSServerConfiguration, group: MultiThreadedEventLoopGroup,
                                states: [ObjectIdentifier: NIOLoopBound<DNSLoopState>]) async throws -> any Channel {
        let limit = configuration.maximumTCPConnections
        let idle = configuration.tcpIdleTimeout
        // SO_REUSEPORT on TCP too: a second agent started during a rolling restart binds the
        // same address before the first one lets go.
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(ChannelOptions.Types.SocketOption(level: .socket, name: NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(DNSTCPConnectionLimiter(maximum: limit))
                }
            }
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let state = states[ObjectIdentifier(channel.eventLoop)] else {
                        throw DNSServerError(address: "\(address)", reason: "connection on an unknown event loop")
                    }
                    let operations = channel.pipeline.syncOperations
                    try operations.addHandler(IdleStateHandler(allTimeout: idle))
                    try operations.addHandler(ByteToMessageHandler(DNSFrameDecoder()))
                    try operations.addHandler(DNSTCPHandler(state: state.value))
                }
            }
            .bind(to: address).get()
    }

    /// Makes `table` the one every loop answers from. Queries in progress finish with the
    /// old table; readers never wait.
    public func replaceTable(_ table: DNSRecordTable) {
        for state in states {
            state.eventLoop.execute { state.value.answerer.table = table }
        }
        for reader in readers { reader.replaceTable(table) }
    }

    /// The query counters of every event loop, summed, and each upstream's health.
    public func statistics() async -> DNSStatistics {
        var total = DNSStatistics()
        for state in states {
            if let part = try? await state.eventLoop.submit({ state.value.answerer.statistics }).get() {
                total.add(part)
            }
        }
        for reader in readers { total.add(reader.statistics) }
        total.upstreams = upstreamHealth.snapshot
        return total
    }

    /// Stops new UDP queries from reaching this server's sockets (they go to the other
    /// sockets of the port: a rolling restart's new agent) while the queued ones are still
    /// answered; ``close()`` afterwards. Datagram readers only (`--dns-udp-reader threads`).
    public func beginDrain() {
        for reader in readers { reader.beginDrain() }
    }

    /// Closes every listener.
    public func close() async {
        for channel in channels { try? await channel.close() }
        for reader in readers { reader.stop() }
    }

    /// Wildcard listen addresses become every local address of their family.
    private static func expand(_ addresses: [SocketAddress]) throws -> [SocketAddress] {
        var result: [SocketAddress] = []
        for address in addresses {
            guard let ip = address.ipAddress, ip == "0.0.0.0" || ip == "::", let port = address.port else {
                result.append(address)
                continue
            }
            let family = address.protocol
            for device in try System.enumerateDevices() {
                guard let local = device.address, local.protocol == family, let text = local.ipAddress else { continue }
                if family == .inet6, text.lowercased().hasPrefix("fe80") { continue }
                result.append(try SocketAddress(ipAddress: text, port: port))
            }
        }
        return result
    }
}
