import ArgumentParser
import DNSResponder
import NFTables
import NIOCore
import NIOPosix

/// The `run` flags for the DNS responder.
struct DNSOptions: ParsableArguments {
    @Option(name: .customLong("dns-listen"),
            help: ArgumentHelp("Address to answer DNS on, UDP and TCP (repeatable). 0.0.0.0 or [::] means every local address present at start. Default: the --dns-address addresses (169.254.20.11 when none is given), or 127.0.0.1:53 with --no-nftables.", valueName: "addr:port"))
    var listen: [String] = []

    @Option(name: .customLong("intercept-cluster-dns"),
            help: ArgumentHelp("Transparent mode: also answer queries sent to this cluster DNS ClusterIP (kube-dns), so pods keep their resolv.conf (repeatable, IPv4 and IPv6). While the agent's socket exists the kernel hands it those queries; when it is gone (crash, SIGKILL, eviction) they go to the cluster DNS again through kube-proxy, by the kernel alone. --upstream must then be another address (deploy/'s kube-dns-upstream Service).", valueName: "ip"))
    var interceptClusterDNS: [String] = []

    @Option(help: ArgumentHelp("DNS server to forward every name the agent does not own to, usually the cluster DNS (repeatable; tried in order, 2 s each).",
                               valueName: "addr:port"))
    var upstream: [String] = []

    @Option(help: ArgumentHelp("Client range allowed to query (repeatable); others get REFUSED. Default: loopback, private and link-local ranges.",
                               valueName: "cidr"))
    var allow: [String] = []

    @Option(help: ArgumentHelp("TTL in seconds of answers for mirrored names (negative answers: at most 5).", valueName: "seconds"))
    var ttl: UInt32 = 5

    @Option(name: .customLong("dns-threads"),
            help: ArgumentHelp("Threads serving DNS, each with its own UDP socket (and event loop for TCP and forwarding). Default: one per CPU core.", valueName: "n"))
    var threads: Int?

    @Option(name: .customLong("dns-udp-reader"),
            help: ArgumentHelp("Who reads the UDP sockets: 'threads' (a thread per socket blocked in recvmmsg; least CPU per query) or 'event-loops' (SwiftNIO datagram channels).",
                               valueName: "threads|event-loops"))
    var udpReader: String = DNSUDPReading.dedicatedThreads.rawValue

    /// How UDP is read, checked by ``validate()``.
    var udpReading: DNSUDPReading { DNSUDPReading(rawValue: udpReader) ?? .dedicatedThreads }

    /// The number of DNS threads to run.
    var threadCount: Int { threads ?? System.coreCount }

    @Flag(name: .customLong("no-dns"), help: "Do not serve DNS (nftables only).")
    var disabled = false

    func validate() throws {
        guard !disabled else { return }
        if let threads, !(1...256).contains(threads) { throw ValidationError("--dns-threads \(threads): expected 1 to 256") }
        guard DNSUDPReading(rawValue: udpReader) != nil else {
            throw ValidationError("--dns-udp-reader \(udpReader): expected one of \(DNSUDPReading.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        _ = try listenAddresses()
        _ = try upstreamAddresses()
        _ = try accessList()
        let intercepted = try interceptedAddresses()
        // Forwarding to an intercepted address would come straight back to the agent.
        for (text, upstream) in zip(upstream, try upstreamAddresses()) {
            if let ip = upstream.ipAddress, let address = IPAddress(ip), intercepted.contains(address) {
                throw ValidationError("--upstream \(text) is intercepted by --intercept-cluster-dns: queries the agent forwards there would come back to it. Forward to the cluster DNS pods through another Service (deploy/ ships kube-dns-upstream) or their addresses.")
            }
        }
    }

    /// The link-local address the agent serves by default on a node (NodeLocal DNSCache's).
    static let linkLocalAddress = "169.254.20.11"

    /// The --intercept-cluster-dns addresses.
    func interceptedAddresses() throws -> [IPAddress] {
        try interceptClusterDNS.map { text in
            guard let address = IPAddress(text) else {
                throw ValidationError("--intercept-cluster-dns \(text): not an IPv4 or IPv6 address (the kube-dns Service's ClusterIP, e.g. 10.96.0.10)")
            }
            return address
        }
    }

    /// Port 53 of each intercepted address.
    func interceptedListenAddresses() throws -> [SocketAddress] {
        try interceptedAddresses().map { try SocketAddress(ipAddress: "\($0)", port: 53) }
    }

    /// The addresses to answer on besides the intercepted ones: --dns-listen, else the
    /// `dnsAddresses` the agent puts on its interface, else loopback (no nftables, no
    /// interface: a lab).
    func listenAddresses(dnsAddresses: [String], nftables: Bool) throws -> [SocketAddress] {
        if !listen.isEmpty { return try listenAddresses() }
        guard nftables, !dnsAddresses.isEmpty else { return [try Self.parseAddress("127.0.0.1:53", flag: "--dns-listen")] }
        return try dnsAddresses.map { try SocketAddress(ipAddress: $0, port: 53) }
    }

    /// The agent answers DNS only with somewhere to send the names it does not own; checked by
    /// `run` (one-shot nftables jobs need no DNS at all).
    func requireUpstream() throws {
        guard disabled || !upstream.isEmpty else {
            throw ValidationError("--upstream is required: the DNS server for names the agent does not own (e.g. the cluster DNS, 10.96.0.10:53), or pass --no-dns")
        }
    }

    func listenAddresses() throws -> [SocketAddress] {
        try listen.map { try Self.parseAddress($0, flag: "--dns-listen") }
    }

    func upstreamAddresses() throws -> [SocketAddress] {
        try upstream.map { try Self.parseAddress($0, flag: "--upstream") }
    }

    func accessList() throws -> DNSAccessList {
        do {
            return allow.isEmpty ? .standard() : try DNSAccessList(allow)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// `1.2.3.4:53`, `[fd00::1]:53`, or an address alone (port 53).
    static func parseAddress(_ text: String, flag: String) throws -> SocketAddress {
        var host = text
        var port = 53
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if rest.hasPrefix(":") {
                guard let value = Int(rest.dropFirst()) else { throw ValidationError("\(flag) \(text): bad port") }
                port = value
            }
        } else if text.filter({ $0 == ":" }).count == 1, let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            guard let value = Int(text[text.index(after: colon)...]) else { throw ValidationError("\(flag) \(text): bad port") }
            port = value
        }
        guard (0...65535).contains(port) else { throw ValidationError("\(flag) \(text): port must be 0–65535") }
        do {
            return try SocketAddress(ipAddress: host, port: port)
        } catch {
            throw ValidationError("\(flag) \(text): expected an IP address and port such as 127.0.0.1:53 or [fd00::1]:53")
        }
    }
}
