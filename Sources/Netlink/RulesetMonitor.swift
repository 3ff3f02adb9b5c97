#if canImport(Glibc)
import Glibc
#endif
import CMnl
import Synchronization

/// Listens to nf_tables change notifications (netlink multicast group `NFNLGRP_NFTABLES`) and
/// reports, for each one, the table it concerns and the netlink port whose batch caused it.
///
/// The kernel announces every committed change (tables, chains, rules, sets, elements, …) to
/// this group, in the network namespace where it happened; the socket belongs to the
/// namespace of the thread that opens the monitor, whichever thread reads it later. A
/// notification's `nlmsg_pid` is the port id of the socket that sent the batch, so a process
/// can tell its own commits from everyone else's.
///
/// Notifications are read on a dedicated thread (a burst never holds up an event loop) and
/// handed to `onEvent` on that thread, one call per notification, in kernel order: keep the
/// callback short. When a burst overflows the receive queue the kernel drops notifications
/// and the monitor reports ``Event/overflowed`` (anything may have changed).
public final class RulesetMonitor: Sendable {
    /// One notification about a table or something in it.
    public struct Change: Sendable, Hashable, CustomStringConvertible {
        /// The table's family as netlink numbers it (`NFPROTO_*`: 1 inet, 2 ip, 10 ip6, …).
        public var family: UInt8
        /// The table's name.
        public var table: String
        /// The port id of the netlink socket whose batch made the change (0: the kernel).
        public var sender: UInt32
        /// The `NFT_MSG_*` type (`NFT_MSG_DELTABLE`, `NFT_MSG_NEWSETELEM`, …).
        public var message: UInt16

        public init(family: UInt8, table: String, sender: UInt32, message: UInt16) {
            self.family = family
            self.table = table
            self.sender = sender
            self.message = message
        }

        /// Whether this notification is the table's deletion.
        public var deletesTable: Bool { message == UInt16(NFT_MSG_DELTABLE.rawValue) || message == 26 }

        /// `delete table ip mirror-agent`.
        public var what: String { "\(RulesetMonitor.verb(of: message)) \(RulesetMonitor.familyName(family)) \(table)" }

        /// `delete table ip mirror-agent (port 4242)`.
        public var description: String { "\(what) (port \(sender))" }
    }

    public enum Event: Sendable, Hashable, CustomStringConvertible {
        /// Something in a table changed.
        case changed(Change)
        /// The receive queue overflowed (`ENOBUFS`): notifications were lost, so any table
        /// may have changed.
        case overflowed

        public var description: String {
            switch self {
            case .changed(let change): "\(change)"
            case .overflowed: "nf_tables notifications lost (receive queue overflowed)"
            }
        }
    }

    /// The monitor's own port id (it sends nothing; for logs).
    public let portID: UInt32
    /// Wakes the reading thread out of `poll` when the monitor stops.
    private let wake: Int32
    /// The reading thread, until ``stop()`` takes it.
    private let thread: Mutex<pthread_t?>

    /// Subscribes to `NFNLGRP_NFTABLES` in the calling thread's network namespace and starts
    /// the reading thread.
    ///
    /// - Parameters:
    ///   - receiveBufferBytes: the socket's receive queue. One committed element is one
    ///     notification of about a hundred bytes, so a big batch needs megabytes; past it the
    ///     monitor reports ``Event/overflowed``.
    ///   - onEvent: called on the monitor's thread for each notification.
    /// - Throws: ``NetlinkError``; EPERM without CAP_NET_ADMIN, EPROTONOSUPPORT without nf_tables.
    public init(receiveBufferBytes: Int = 16 << 20, onEvent: @escaping @Sendable (Event) -> Void) throws {
        guard let socket = mnl_socket_open2(NETLINK_NETFILTER, Int32(SOCK_CLOEXEC.rawValue)) else {
            throw NetlinkError(call: "mnl_socket_open(NETLINK_NETFILTER)", errno: errno, context: "opening the nf_tables monitor")
        }
        var handedOver = false
        defer { if !handedOver { mnl_socket_close(socket) } }
        guard mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            throw NetlinkError(call: "mnl_socket_bind", errno: errno, context: "binding the nf_tables monitor")
        }
        var group = Int32(NFNLGRP_NFTABLES.rawValue)
        guard mnl_socket_setsockopt(socket, NETLINK_ADD_MEMBERSHIP, &group, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw NetlinkError(call: "setsockopt(NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTABLES)", errno: errno,
                               context: "subscribing to nf_tables notifications")
        }
        let fd = mnl_socket_get_fd(socket)
        var size = Int32(clamping: receiveBufferBytes)
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        portID = mnl_socket_get_portid(socket)
        let wake = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard wake >= 0 else { throw NetlinkError(call: "eventfd", errno: errno, context: "starting the nf_tables monitor") }
        self.wake = wake

        // The thread owns the socket from here on and closes it when it ends.
        let reader = Reader(socket: socket, wake: wake, onEvent: onEvent)
        let box = Unmanaged.passRetained(reader)
        var handle = pthread_t()
        let created = pthread_create(&handle, nil, { raw in
            guard let raw else { return nil }
            let reader = Unmanaged<Reader>.fromOpaque(raw).takeRetainedValue()
            reader.run()
            return nil
        }, box.toOpaque())
        guard created == 0 else {
            box.release()
            Glibc.close(wake)
            throw NetlinkError(call: "pthread_create", errno: created, context: "starting the nf_tables monitor")
        }
        handedOver = true
        thread = Mutex(handle)
    }

    deinit {
        stop()
    }

    /// Stops the reading thread, waits for it (no `onEvent` call happens after this returns)
    /// and closes the socket. Idempotent.
    public func stop() {
        guard let handle = thread.withLock({ thread -> pthread_t? in
            defer { thread = nil }
            return thread
        }) else { return }
        _ = eventfd_write(wake, 1)
        pthread_join(handle, nil)
        Glibc.close(wake)
    }

    /// The reading thread's state; used by that thread only.
    private final class Reader {
        let socket: OpaquePointer
        let wake: Int32
        let onEvent: @Sendable (Event) -> Void
        let bufferSize = 1 << 18

        init(socket: OpaquePointer, wake: Int32, onEvent: @escaping @Sendable (Event) -> Void) {
            self.socket = socket
            self.wake = wake
            self.onEvent = onEvent
        }

        func run() {
            defer { mnl_socket_close(socket) }
            let fd = mnl_socket_get_fd(socket)
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 8)
            defer { buffer.deallocate() }
            var descriptors = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
            while true {
                // Bounded, so a lost wake-up can never keep the thread forever.
                let ready = poll(&descriptors, 2, 1000)
                if ready < 0 && errno != EINTR { usleep(100_000) }
                if ready <= 0 { continue }
                if descriptors[1].revents != 0 { return }
                guard descriptors[0].revents != 0 else { continue }
                readQueued(fd: fd, buffer: buffer)
            }
        }

        /// Reads every datagram queued now.
        private func readQueued(fd: Int32, buffer: UnsafeMutableRawPointer) {
            while true {
                let received = recv(fd, buffer, bufferSize, Int32(MSG_DONTWAIT | MSG_TRUNC))
                if received < 0 {
                    switch errno {
                    case EINTR: continue
                    case ENOBUFS:
                        // The kernel dropped notifications; the queue is readable again.
                        onEvent(.overflowed)
                        continue
                    case EAGAIN, EWOULDBLOCK: return
                    default:
                        // Unexpected: say something may have been missed, and let poll pace us.
                        onEvent(.overflowed)
                        return
                    }
                }
                if received > bufferSize {
                    onEvent(.overflowed)
                    continue
                }
                RulesetMonitor.parse(UnsafeRawBufferPointer(start: buffer, count: received), onEvent)
            }
        }
    }

    /// Reports each table notification in one datagram.
    static func parse(_ datagram: UnsafeRawBufferPointer, _ onEvent: (Event) -> Void) {
        NetlinkMessage.forEach(in: datagram) { message in
            let type = message.type
            guard type >> 8 == UInt16(NFNL_SUBSYS_NFTABLES), tableScoped.contains(UInt8(type & 0xff)),
                  message.bytes.count >= 20 else { return true }
            let family = message.bytes[16]
            let sender = message.bytes.loadUnaligned(fromByteOffset: 12, as: UInt32.self)
            var table: String?
            // NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE,
            // NFTA_SET_ELEM_LIST_TABLE, NFTA_OBJ_TABLE and NFTA_FLOWTABLE_TABLE are all type 1.
            NetlinkMessage.forEachAttribute(in: UnsafeRawBufferPointer(rebasing: message.bytes[20...])) { attribute, payload in
                guard table == nil, attribute == 1 else { return }
                let name = payload.prefix { $0 != 0 }
                table = String(decoding: name, as: UTF8.self)
            }
            if let table {
                onEvent(.changed(Change(family: family, table: table, sender: sender, message: type & 0xff)))
            }
            return true
        }
    }

    /// The `NFT_MSG_*` notifications that concern one table (not `NEWGEN`, the end of a batch).
    static let tableScoped: Set<UInt8> = {
        var types: [UInt32] = [NFT_MSG_NEWTABLE, NFT_MSG_DELTABLE, NFT_MSG_NEWCHAIN, NFT_MSG_DELCHAIN,
                               NFT_MSG_NEWRULE, NFT_MSG_DELRULE, NFT_MSG_NEWSET, NFT_MSG_DELSET,
                               NFT_MSG_NEWSETELEM, NFT_MSG_DELSETELEM, NFT_MSG_NEWOBJ, NFT_MSG_DELOBJ,
                               NFT_MSG_NEWFLOWTABLE, NFT_MSG_DELFLOWTABLE].map(\.rawValue)
        // NFT_MSG_DESTROY* (kernel 6.3+; not in older headers): announced as DEL* today, but
        // a kernel that announces them as themselves still names the table.
        types += Array(26 ... 32)
        return Set(types.map { UInt8($0) })
    }()

    public static func verb(of message: UInt16) -> String {
        switch UInt32(message) {
        case NFT_MSG_NEWTABLE.rawValue: "add table"
        case NFT_MSG_DELTABLE.rawValue, 26: "delete table"
        case NFT_MSG_NEWCHAIN.rawValue: "add chain in table"
        case NFT_MSG_DELCHAIN.rawValue, 27: "delete chain in table"
        case NFT_MSG_NEWRULE.rawValue: "add rule in table"
        case NFT_MSG_DELRULE.rawValue, 28: "delete rule in table"
        case NFT_MSG_NEWSET.rawValue: "add set in table"
        case NFT_MSG_DELSET.rawValue, 29: "delete set in table"
        case NFT_MSG_NEWSETELEM.rawValue: "add element in table"
        case NFT_MSG_DELSETELEM.rawValue, 30: "delete element in table"
        default: "change (message \(message)) in table"
        }
    }

    /// `ip`, `ip6`, `inet`, … for an `NFPROTO_*` number.
    public static func familyName(_ family: UInt8) -> String {
        switch family {
        case 1: "inet"
        case 2: "ip"
        case 3: "arp"
        case 5: "netdev"
        case 7: "bridge"
        case 10: "ip6"
        default: "family \(family)"
        }
    }
}
