#if canImport(Glibc)
import Glibc
#endif
import CDatagramBatch
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Serves DNS on one UDP socket from a thread of its own: it sleeps in `recvmmsg` until
/// queries arrive, answers the whole burst from the table or the cache, and sends the
/// replies with one `sendmmsg` to the addresses they came from.
///
/// Why not a NIO datagram channel: per datagram, NIO formats the sender's address as text
/// (`inet_ntop`), boxes it, and wraps reply and address in envelopes through the pipeline;
/// at 20k queries/s that costs more CPU than answering (measured with `PROFILE=… bench/dns.sh`:
/// ~4 µs of NIO and runtime per query against ~1 µs of lookup and encoding). Here the
/// sender's `sockaddr` goes from `recvmmsg` straight back into `sendmmsg`, and the buffers
/// are allocated once. Queries that must go upstream are handed to an event loop's
/// forwarder, whose answer is sent from this socket when it arrives.
final class DNSDatagramReader: @unchecked Sendable {
    private let socket: CInt
    /// Where cache misses are resolved.
    private let forwarding: NIOLoopBound<DNSLoopState>
    private let logger: Logger
    /// Guards `answerer` (the reader thread holds it while answering a burst; table
    /// replacement and statistics take it from other threads) and `stopping`.
    private let lock = NIOLock()
    private let answerer: DNSAnswerer
    private var stopping = false
    /// Guards `closed` and the socket's close, so an upstream answer sent from an event loop
    /// never waits for a burst being answered.
    private let socketLock = NIOLock()
    private var closed = false
    private var thread: pthread_t?

    private let count: Int
    private let receiveSize: Int
    private static let sendSize = 4096
    private let receiveMemory: UnsafeMutableRawPointer
    private let sendMemory: UnsafeMutableRawPointer
    private let addresses: UnsafeMutablePointer<sockaddr_storage>
    private let receiveVectors: UnsafeMutablePointer<iovec>
    private let sendVectors: UnsafeMutablePointer<iovec>
    private let receiveHeaders: UnsafeMutablePointer<mirror_agent_mmsghdr>
    private let sendHeaders: UnsafeMutablePointer<mirror_agent_mmsghdr>

    /// The bound address (with the real port when 0 was asked).
    let localAddress: SocketAddress

    /// Binds `address` (SO_REUSEPORT, shared with the other readers and a restarting
    /// agent) and starts reading on a new thread.
    ///
    /// - Throws: ``DNSDatagramSocketError`` naming the failed call.
    init(address: SocketAddress, answerer: DNSAnswerer, forwarding: NIOLoopBound<DNSLoopState>, burst: Int, receiveSize: Int,
         name: String, logger: Logger) throws {
        socket = try DNSDatagramSocket.bind(address)
        do {
            localAddress = try DNSDatagramSocket.localAddress(socket)
        } catch {
            close(socket)
            throw error
        }
        self.answerer = answerer
        self.forwarding = forwarding
        self.logger = logger
        count = max(1, min(burst, DNSAnswerer.scratchCount / 2))
        self.receiveSize = max(DNSLimits.classicUDPSize, receiveSize)
        receiveMemory = .allocate(byteCount: count * self.receiveSize, alignment: 16)
        sendMemory = .allocate(byteCount: count * Self.sendSize, alignment: 16)
        addresses = .allocate(capacity: count)
        addresses.initialize(repeating: sockaddr_storage(), count: count)
        receiveVectors = .allocate(capacity: count)
        sendVectors = .allocate(capacity: count)
        receiveHeaders = .allocate(capacity: count)
        sendHeaders = .allocate(capacity: count)
        for index in 0..<count {
            receiveVectors[index] = iovec(iov_base: receiveMemory + index * self.receiveSize, iov_len: self.receiveSize)
            sendVectors[index] = iovec(iov_base: sendMemory + index * Self.sendSize, iov_len: 0)
            var header = msghdr()
            header.msg_name = UnsafeMutableRawPointer(addresses + index)
            header.msg_iov = receiveVectors + index
            header.msg_iovlen = 1
            receiveHeaders[index] = mirror_agent_mmsghdr(msg_hdr: header, msg_len: 0)
            header.msg_iov = sendVectors + index
            sendHeaders[index] = mirror_agent_mmsghdr(msg_hdr: header, msg_len: 0)
        }
        try start(name: name)
    }

    deinit {
        receiveMemory.deallocate()
        sendMemory.deallocate()
        addresses.deallocate()
        receiveVectors.deallocate()
        sendVectors.deallocate()
        receiveHeaders.deallocate()
        sendHeaders.deallocate()
    }

    private func start(name: String) throws {
        var thread = pthread_t()
        let context = Unmanaged.passRetained(ReaderStart(reader: self, name: name)).toOpaque()
        let result = pthread_create(&thread, nil, { context in
            guard let context else { return nil }
            let start = Unmanaged<ReaderStart>.fromOpaque(context).takeRetainedValue()
            mirror_agent_name_thread(start.name)
            start.reader.run()
            return nil
        }, context)
        guard result == 0 else {
            Unmanaged<ReaderStart>.fromOpaque(context).release()
            close(socket)
            throw DNSDatagramSocketError(call: "pthread_create", address: "\(localAddress)", code: result)
        }
        self.thread = thread
    }

    /// Makes `table` the one this reader answers from, from its next burst on.
    func replaceTable(_ table: DNSRecordTable) {
        lock.withLock { answerer.table = table }
    }

    var statistics: DNSStatistics {
        lock.withLock { answerer.statistics }
    }

    /// Takes the socket out of its port's SO_REUSEPORT group for new queries while the ones
    /// already queued on it are still read and answered: a connected UDP socket is only
    /// chosen for datagrams from its one peer (here: its own address's discard port, which
    /// sends nothing), so the kernel gives every new query to the other sockets — another
    /// agent's during a rolling restart. Closing at once would drop the queued queries.
    func beginDrain() {
        var peer = localAddress
        // A wildcard-bound socket has no address of its own to name: loopback will do.
        switch peer {
        case .v4(let address) where address.address.sin_addr.s_addr == 0:
            peer = (try? SocketAddress(ipAddress: "127.0.0.1", port: 9)) ?? peer
        case .v6 where peer.ipAddress == "::":
            peer = (try? SocketAddress(ipAddress: "::1", port: 9)) ?? peer
        default:
            break
        }
        peer.port = 9
        socketLock.withLock {
            guard !closed else { return }
            _ = peer.withSockAddr { pointer, length in connect(socket, pointer, socklen_t(length)) }
        }
    }

    /// Stops reading, waits for the thread, and closes the socket. Answers still coming
    /// back from upstreams afterwards are dropped.
    func stop() {
        let thread: pthread_t? = lock.withLock {
            stopping = true
            defer { self.thread = nil }
            return self.thread
        }
        // Wakes the thread out of recvmmsg (it then sees `stopping`); the receive timeout
        // set at bind is the fallback.
        shutdown(socket, Int32(SHUT_RD))
        if let thread { pthread_join(thread, nil) }
        socketLock.withLock {
            guard !closed else { return }
            closed = true
            close(socket)
        }
    }

    // MARK: the reader thread

    private func run() {
        var failures = 0
        while true {
            for index in 0..<count {
                receiveHeaders[index].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
                receiveHeaders[index].msg_hdr.msg_flags = 0
            }
            let received = mirror_agent_recv_burst(socket, receiveHeaders, UInt32(count))
            if received <= 0 {
                let code = errno
                if lock.withLock({ stopping }) { return }
                if received < 0, code != EINTR, code != EAGAIN, code != EWOULDBLOCK {
                    failures += 1
                    if failures == 1 || failures % 10_000 == 0 {
                        logger.warning("DNS UDP receive failed", metadata: ["address": "\(localAddress)", "errno": "\(code)",
                                                                            "error": "\(String(cString: strerror(code)))", "failures": "\(failures)"])
                    }
                    if code == EBADF || code == ENOTSOCK { return }
                }
                continue
            }
            let replies: Int = lock.withLock {
                if stopping { return -1 }
                return answer(received: Int(received))
            }
            if replies < 0 { return }
            if replies > 0 { send(replies) }
        }
    }

    /// Answers the burst's datagrams into the send slots; returns how many replies to send.
    @inline(__always)
    private func answer(received: Int) -> Int {
        var replies = 0
        for index in 0..<received {
            let length = Int(receiveHeaders[index].msg_len)
            let packet = UnsafeRawBufferPointer(start: receiveMemory + index * receiveSize, count: length)
            let allowed = answerer.processor.access.allows(addresses + index)
            switch answerer.process(packet, allowed: allowed, overTCP: false) {
            case .reply(let response):
                let size = response.readableBytes
                guard size <= Self.sendSize else {
                    sendOne(response, to: addresses[index], length: receiveHeaders[index].msg_hdr.msg_namelen)
                    continue
                }
                response.withUnsafeReadableBytes { bytes in
                    if let base = bytes.baseAddress { (sendMemory + replies * Self.sendSize).copyMemory(from: base, byteCount: size) }
                }
                sendVectors[replies].iov_len = size
                sendHeaders[replies].msg_hdr.msg_name = UnsafeMutableRawPointer(addresses + index)
                sendHeaders[replies].msg_hdr.msg_namelen = receiveHeaders[index].msg_hdr.msg_namelen
                replies += 1
            case .forward(let request):
                forward(request, to: addresses[index], length: receiveHeaders[index].msg_hdr.msg_namelen)
            case .drop:
                break
            }
        }
        return replies
    }

    /// Sends the first `replies` send slots; a reply the kernel refuses (its client gone,
    /// buffer full) is skipped, as a lost datagram would be.
    private func send(_ replies: Int) {
        var first = 0
        while first < replies {
            let sent = mirror_agent_send_burst(socket, sendHeaders + first, UInt32(replies - first))
            if sent < 0 {
                if errno == EINTR { continue }
                first += 1
            } else {
                first += Int(sent)
            }
        }
    }

    private func sendOne(_ response: ByteBuffer, to address: sockaddr_storage, length: socklen_t) {
        var address = address
        response.withUnsafeReadableBytes { bytes in
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    _ = sendto(socket, bytes.baseAddress, bytes.count, 0, $0, length)
                }
            }
        }
    }

    /// Hands a cache miss to the event loop's forwarder; its answer is sent from this
    /// socket on that loop, unless the reader has been stopped by then.
    private func forward(_ request: DNSForwardRequest, to address: sockaddr_storage, length: socklen_t) {
        let forwarding = self.forwarding
        forwarding.eventLoop.execute {
            let state = forwarding.value
            state.forwarder.resolve(request, allocator: ByteBufferAllocator()) { response in
                self.socketLock.withLock {
                    guard !self.closed else { return }
                    self.sendOne(response, to: address, length: length)
                }
            }
        }
    }
}

/// What a new reader thread starts with.
private final class ReaderStart {
    let reader: DNSDatagramReader
    let name: String

    init(reader: DNSDatagramReader, name: String) {
        self.reader = reader
        self.name = name
    }
}
