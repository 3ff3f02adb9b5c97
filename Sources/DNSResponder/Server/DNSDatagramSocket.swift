#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// A UDP listener socket made by hand for ``DNSDatagramReader`` (NIO's bootstrap would
/// make a channel, which is what the reader avoids).
enum DNSDatagramSocket {
    /// A blocking UDP socket bound to `address` with SO_REUSEADDR and SO_REUSEPORT (the
    /// other readers, and a restarting agent, bind the same address), IPv6 sockets
    /// IPv6-only, and a 1 s receive timeout so a reader notices it is stopped even if
    /// nothing wakes it.
    static func bind(_ address: SocketAddress) throws -> CInt {
        let family: CInt
        switch address {
        case .v4: family = AF_INET
        case .v6: family = AF_INET6
        default: throw DNSDatagramSocketError(call: "socket", address: "\(address)", code: EAFNOSUPPORT)
        }
        let fd = Glibc.socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw DNSDatagramSocketError(call: "socket", address: "\(address)", code: errno) }
        do {
            try option(fd, SOL_SOCKET, SO_REUSEADDR, 1, address: address)
            try option(fd, SOL_SOCKET, SO_REUSEPORT, 1, address: address)
            if family == AF_INET6 { try option(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1, address: address) }
            var timeout = timeval(tv_sec: 1, tv_usec: 0)
            guard setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
                throw DNSDatagramSocketError(call: "setsockopt(SO_RCVTIMEO)", address: "\(address)", code: errno)
            }
            let result = address.withSockAddr { pointer, length in Glibc.bind(fd, pointer, socklen_t(length)) }
            guard result == 0 else { throw DNSDatagramSocketError(call: "bind", address: "\(address)", code: errno) }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// The address `fd` is bound to.
    static func localAddress(_ fd: CInt) throws -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard result == 0 else { throw DNSDatagramSocketError(call: "getsockname", address: "fd \(fd)", code: errno) }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafeBytes(of: storage) { SocketAddress($0.load(as: sockaddr_in.self)) }
        case AF_INET6:
            return withUnsafeBytes(of: storage) { SocketAddress($0.load(as: sockaddr_in6.self)) }
        default:
            throw DNSDatagramSocketError(call: "getsockname", address: "fd \(fd)", code: EAFNOSUPPORT)
        }
    }

    private static func option(_ fd: CInt, _ level: CInt, _ name: CInt, _ value: CInt, address: SocketAddress) throws {
        var value = value
        guard setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<CInt>.size)) == 0 else {
            throw DNSDatagramSocketError(call: "setsockopt(\(level)/\(name))", address: "\(address)", code: errno)
        }
    }
}

/// A system call on a UDP listener socket failed.
struct DNSDatagramSocketError: Error, CustomStringConvertible {
    var call: String
    var address: String
    var code: CInt

    var description: String {
        let reason = String(cString: strerror(code))
        if call == "bind", code == EADDRINUSE {
            return "UDP \(address): \(reason) (another DNS server, or an agent without SO_REUSEPORT, holds it)"
        }
        return "UDP \(address): \(call) failed: \(reason) (errno \(code))"
    }
}
