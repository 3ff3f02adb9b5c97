#if canImport(Glibc)
import Glibc
#endif
import CMnl

/// A netlink socket to the kernel's netfilter subsystem (nf_tables), with buffers big enough
/// for batches of hundreds of thousands of messages.
///
/// The socket belongs to the network namespace of the thread that opened it. It is not
/// thread-safe; use it from one task at a time. Call ``close()`` when done (`deinit` closes a
/// forgotten socket too, but an explicit close makes the lifetime visible).
public final class NetfilterSocket {
    private var socket: OpaquePointer?
    /// The port id the kernel assigned; replies are addressed to it.
    public let portID: UInt32
    private var sequence: UInt32
    private var receiveBuffer: UnsafeMutableRawPointer
    private let receiveBufferSize = 1 << 18
    private var sendBufferSize = 0

    /// Opens and binds the socket and enables extended acks.
    ///
    /// - Throws: ``NetlinkError`` naming the failing call; EPERM means no CAP_NET_ADMIN.
    public init(receiveBufferBytes: Int = 8 << 20) throws {
        guard let socket = mnl_socket_open(NETLINK_NETFILTER) else {
            throw NetlinkError(call: "mnl_socket_open(NETLINK_NETFILTER)", errno: errno, context: "opening the netfilter socket")
        }
        guard mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let code = errno
            mnl_socket_close(socket)
            throw NetlinkError(call: "mnl_socket_bind", errno: code, context: "binding the netfilter socket")
        }
        self.socket = socket
        portID = mnl_socket_get_portid(socket)
        // Start from the clock so sequence numbers of a restarted agent don't collide.
        sequence = UInt32(truncatingIfNeeded: time(nil))
        guard let buffer = malloc(receiveBufferSize) else { fatalError("out of memory allocating a netlink receive buffer") }
        receiveBuffer = buffer
        var one: Int32 = 1
        _ = mnl_socket_setsockopt(socket, NETLINK_EXT_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = mnl_socket_setsockopt(socket, NETLINK_CAP_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        setBuffer(SO_RCVBUFFORCE, fallback: SO_RCVBUF, bytes: receiveBufferBytes)
    }

    deinit {
        if let socket { mnl_socket_close(socket) }
        free(receiveBuffer)
    }

    /// Closes the socket; further use is a programming error.
    public func close() {
        if let socket { mnl_socket_close(socket) }
        socket = nil
    }

    /// Hands out `count` consecutive sequence numbers and returns the first.
    public func reserveSequences(_ count: Int) -> UInt32 {
        let first = sequence
        sequence &+= UInt32(truncatingIfNeeded: count)
        return first
    }

    private var fd: Int32 {
        guard let socket else { preconditionFailure("NetfilterSocket used after close()") }
        return mnl_socket_get_fd(socket)
    }

    private func setBuffer(_ option: Int32, fallback: Int32, bytes: Int) {
        var value = Int32(clamping: bytes)
        if setsockopt(fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, fallback, &value, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    // MARK: sending

    /// Sends `bytes` as one datagram (the kernel processes a batch within one `sendmsg`).
    func sendRaw(_ bytes: UnsafeRawBufferPointer, context: String) throws {
        if bytes.count + 4096 > sendBufferSize {
            sendBufferSize = bytes.count + 65536
            setBuffer(SO_SNDBUFFORCE, fallback: SO_SNDBUF, bytes: sendBufferSize)
        }
        var address = sockaddr_nl()
        address.nl_family = sa_family_t(AF_NETLINK)
        while true {
            let sent = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
                }
            }
            if sent >= 0 { return }
            if errno == EINTR { continue }
            throw NetlinkError(call: "sendto", errno: errno, context: context)
        }
    }

    // MARK: receiving

    /// Reads one datagram. `wait: false` returns nil when nothing is queued.
    func receiveRaw(wait: Bool, context: String) throws -> UnsafeRawBufferPointer? {
        while true {
            let received = recv(fd, receiveBuffer, receiveBufferSize, wait ? 0 : Int32(MSG_DONTWAIT))
            if received >= 0 { return UnsafeRawBufferPointer(start: receiveBuffer, count: received) }
            if errno == EINTR { continue }
            if !wait && (errno == EAGAIN || errno == EWOULDBLOCK) { return nil }
            throw NetlinkError(call: "recv", errno: errno, context: context)
        }
    }

    /// Drops anything left queued from an earlier exchange (e.g. after an error mid-dump).
    func drain() {
        while let data = try? receiveRaw(wait: false, context: "draining"), data.count > 0 {}
    }
}
