import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Whether another socket holds a UDP address, as `check` and the state-less agent ask it.
enum UDPPort {
    /// A plain bind (without SO_REUSEPORT) fails with EADDRINUSE when any socket, shared or
    /// not, is bound there.
    static func isTaken(_ address: SocketAddress) -> Bool {
        let fd = socket(Int32(address.protocol.rawValue), Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let status = address.withSockAddr { pointer, length in bind(fd, pointer, socklen_t(length)) }
        return status != 0 && errno == EADDRINUSE
    }
}
