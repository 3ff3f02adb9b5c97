import Foundation
import NIOSSL
import NFTables
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// The node checks `mirror-agent check` runs before an agent is installed or when it
/// misbehaves, each a pass/fail line with what to do, in the spirit of
/// `linkerd multicluster check`.
struct Preflight {
    struct Result {
        var name: String
        var passed: Bool
        var detail: String
        /// Passed, but needs attention soon (a certificate close to expiry).
        var warning = false
    }

    var dnsListen: [String]
    var upstreams: [String]
    var feed: String?
    /// PEM files whose certificates are checked for expiry.
    var certificates: [String] = []
    /// Cluster DNS addresses the agent should intercept (transparent mode).
    var intercepted: [String] = []

    func run() async -> [Result] {
        var results = [privileges(), nftables()]
        for address in intercepted { results.append(interception(address)) }
        for listen in dnsListen { results.append(portFree(listen)) }
        for upstream in upstreams { results.append(upstreamAnswers(upstream)) }
        if let feed { results.append(await feedReachable(feed)) }
        for file in certificates { results.append(contentsOf: Self.certificateExpiry(file)) }
        return results
    }

    /// A certificate expiring within this long is a warning; an expired one fails.
    static let expiryWarning: TimeInterval = 7 * 86_400

    /// One result per certificate in `file` (a bundle may hold several).
    static func certificateExpiry(_ file: String, now: Date = Date()) -> [Result] {
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(file)
        } catch {
            return [Result(name: "certificate \(file)", passed: false, detail: "cannot read it as PEM: \(error)")]
        }
        guard !certificates.isEmpty else { return [Result(name: "certificate \(file)", passed: false, detail: "no PEM certificate in the file")] }
        return certificates.enumerated().map { index, certificate in
            let notAfter = Date(timeIntervalSince1970: TimeInterval(certificate.notValidAfter))
            let left = notAfter.timeIntervalSince(now)
            let name = certificates.count > 1 ? "certificate \(file) [\(index)]" : "certificate \(file)"
            let date = ISO8601DateFormatter().string(from: notAfter)
            if left < 0 { return Result(name: name, passed: false, detail: "EXPIRED on \(date): new TLS handshakes with it fail") }
            let days = Int(left / 86_400)
            if left < expiryWarning {
                return Result(name: name, passed: true, detail: "expires in \(days) days (\(date)): rotate it now", warning: true)
            }
            return Result(name: name, passed: true, detail: "expires in \(days) days (\(date))")
        }
    }

    private func privileges() -> Result {
        // CAP_NET_ADMIN is bit 12 of the effective set.
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let effective = status.split(separator: "\n").first { $0.hasPrefix("CapEff:") }
            .flatMap { UInt64($0.split(separator: "\t").last.map(String.init) ?? "", radix: 16) } ?? 0
        let netAdmin = effective & (1 << 12) != 0
        let bindService = effective & (1 << 10) != 0
        return Result(name: "capabilities", passed: netAdmin && bindService,
                      detail: netAdmin && bindService ? "CAP_NET_ADMIN and CAP_NET_BIND_SERVICE present"
                          : "missing \([netAdmin ? nil : "CAP_NET_ADMIN", bindService ? nil : "CAP_NET_BIND_SERVICE"].compactMap { $0 }.joined(separator: ", ")); run as root or grant them (deploy/overlays/least-privilege)")
    }

    private func nftables() -> Result {
        do {
            let backend = try KernelRulesetBackend()
            defer { backend.close() }
            let snapshot = try backend.read(MirrorTables.tableIDs)
            let state = snapshot.ruleset.tables.isEmpty ? "no agent tables yet" : "agent tables present (\(snapshot.ruleset.tables.count))"
            return Result(name: "nf_tables", passed: true, detail: "kernel answers at ruleset generation \(snapshot.generation); \(state)")
        } catch {
            return Result(name: "nf_tables", passed: false, detail: "\(error)")
        }
    }

    /// Transparent mode for `text`: the kernel holds the socket-conditional NOTRACK rules
    /// (fail-open armed: with no agent socket the cluster DNS answers), and whether the agent
    /// is listening on it right now.
    private func interception(_ text: String) -> Result {
        let name = "transparent DNS \(text)"
        guard let address = IPAddress(text) else { return Result(name: name, passed: false, detail: "not an IP address") }
        let expected = MirrorTables(interceptedDNS: [address]).desired
        do {
            let backend = try KernelRulesetBackend()
            defer { backend.close() }
            let kernel = try backend.read(MirrorTables.tableIDs).ruleset
            let armed = expected.tables.allSatisfy { id, table in
                let present = Set((kernel[id]?.rules["raw-prerouting"] ?? []).map(\.storedComment))
                return (table.rules["raw-prerouting"] ?? []).allSatisfy { present.contains($0.storedComment) }
            }
            guard armed else {
                return Result(name: name, passed: false,
                              detail: "no intercept rules for \(text) in the mirror-agent tables: the agent runs without --intercept-cluster-dns \(text), or has applied no state yet; queries go to the cluster DNS")
            }
            let listening = (try? SocketAddress(ipAddress: "\(address)", port: 53)).map(UDPPort.isTaken) ?? false
            return Result(name: name, passed: true,
                          detail: "fail-open armed (queries are untracked only while a socket takes them); "
                              + (listening ? "the agent answers on it" : "no socket now: the cluster DNS answers (kube-proxy's DNAT)"))
        } catch {
            return Result(name: name, passed: false, detail: "\(error)")
        }
    }

    private func portFree(_ listen: String) -> Result {
        let name = "dns listen \(listen)"
        guard let address = try? Self.parse(listen) else {
            return Result(name: name, passed: false, detail: "not ADDRESS:PORT")
        }
        for type in [SOCK_DGRAM, SOCK_STREAM] {
            let fd = socket(Int32(address.protocol.rawValue), Int32(type.rawValue), 0)
            guard fd >= 0 else { return Result(name: name, passed: false, detail: "socket: \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            let status = address.withSockAddr { pointer, length in bind(fd, pointer, socklen_t(length)) }
            if status != 0 {
                let reason = errno == EADDRINUSE ? "already in use by another process (another DNS server, or a running agent)"
                    : errno == EADDRNOTAVAIL ? "the address is not on this node yet (the agent adds it to its dummy interface)"
                    : String(cString: strerror(errno))
                let kind = type == SOCK_DGRAM ? "UDP" : "TCP"
                return Result(name: name, passed: errno == EADDRNOTAVAIL, detail: "\(kind): \(reason)")
            }
        }
        return Result(name: name, passed: true, detail: "UDP and TCP free")
    }

    private func upstreamAnswers(_ upstream: String) -> Result {
        let name = "upstream \(upstream)"
        guard let address = try? Self.parse(upstream) else { return Result(name: name, passed: false, detail: "not ADDRESS:PORT") }
        let fd = socket(Int32(address.protocol.rawValue), Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return Result(name: name, passed: false, detail: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        // A query for the root's NS: any working resolver answers it (even with REFUSED).
        let id = UInt16.random(in: 0...UInt16.max)
        let query: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1]
        let sent = address.withSockAddr { pointer, length in
            query.withUnsafeBytes { sendto(fd, $0.baseAddress, query.count, 0, pointer, socklen_t(length)) }
        }
        guard sent == query.count else { return Result(name: name, passed: false, detail: "send: \(String(cString: strerror(errno)))") }
        var reply = [UInt8](repeating: 0, count: 512)
        let received = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard received >= 12 else {
            return Result(name: name, passed: false, detail: received < 0 ? "no answer within 2 s (\(String(cString: strerror(errno))))" : "short reply")
        }
        guard reply[0] == query[0], reply[1] == query[1] else { return Result(name: name, passed: false, detail: "reply with a wrong ID") }
        let rcode = reply[3] & 0x0F
        return Result(name: name, passed: true, detail: "answers (rcode \(rcode))")
    }

    private func feedReachable(_ feed: String) async -> Result {
        let name = "feed \(feed)"
        if feed.hasPrefix("file:") {
            let path = String(feed.dropFirst(5))
            return FileManager.default.isReadableFile(atPath: path)
                ? Result(name: name, passed: true, detail: "state file readable")
                : Result(name: name, passed: false, detail: "cannot read \(path)")
        }
        guard let url = URL(string: feed), let host = url.host else { return Result(name: name, passed: false, detail: "not a URL") }
        let port = url.port ?? (url.scheme == "https" ? 443 : 80)
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(3))
                .connect(host: host, port: port).get()
            try? await channel.close()
            return Result(name: name, passed: true, detail: "TCP connection to \(host):\(port) accepted")
        } catch {
            return Result(name: name, passed: false, detail: "cannot connect to \(host):\(port): \(error)")
        }
    }

    /// The DNS flags' own address parser, so `check` reads addresses exactly as `run` does.
    private static func parse(_ text: String) throws -> SocketAddress {
        try DNSOptions.parseAddress(text, flag: "address")
    }
}
