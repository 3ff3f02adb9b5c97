import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Minimal blocking sockets on 127.0.0.1 for tests that need control dig does not give
/// (several messages on one TCP connection, idle connections, fake upstreams).
enum RawSocket {
    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return address
    }

    static func setTimeout(_ fd: Int32, seconds: Double) {
        var timeout = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// A UDP socket bound to 127.0.0.1:`port` (0: any).
    static func udp(port: Int = 0) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var address = loopback(port: port)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        return fd
    }

    static func send(_ fd: Int32, _ bytes: [UInt8], to port: Int) {
        var address = loopback(port: port)
        _ = bytes.withUnsafeBytes { raw in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, raw.baseAddress, raw.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
    }

    /// One datagram and the sender's port, or nil on timeout.
    static func receive(_ fd: Int32) -> (bytes: [UInt8], port: Int)? {
        var buffer = [UInt8](repeating: 0, count: 65535)
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let count = buffer.withUnsafeMutableBytes { raw in
            withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, raw.baseAddress, raw.count, 0, $0, &length) }
            }
        }
        guard count >= 0 else { return nil }
        return (Array(buffer.prefix(count)), Int(UInt16(bigEndian: address.sin_port)))
    }

    /// A TCP connection to 127.0.0.1:`port`, or -1.
    static func tcpConnect(port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = loopback(port: port)
        let result = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if result != 0 {
            close(fd)
            return -1
        }
        return fd
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// Reads exactly `count` bytes; nil on EOF, error or timeout.
    static func readExactly(_ fd: Int32, _ count: Int) -> [UInt8]? {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: count)
        while result.count < count {
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, count - result.count) }
            guard got > 0 else { return nil }
            result += buffer.prefix(got)
        }
        return result
    }

    /// Reads one length-prefixed DNS message.
    static func readFrame(_ fd: Int32) -> [UInt8]? {
        guard let prefix = readExactly(fd, 2) else { return nil }
        return readExactly(fd, Int(prefix[0]) << 8 | Int(prefix[1]))
    }

    static func frame(_ message: [UInt8]) -> [UInt8] {
        [UInt8(message.count >> 8), UInt8(message.count & 0xFF)] + message
    }

    /// Whether the peer closed the connection within `seconds` (read returns 0).
    static func closedByPeer(_ fd: Int32, within seconds: Double) -> Bool {
        setTimeout(fd, seconds: seconds)
        var byte: UInt8 = 0
        return read(fd, &byte, 1) == 0
    }
}
