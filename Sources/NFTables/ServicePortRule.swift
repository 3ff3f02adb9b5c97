/// Where connections to one mirrored service port go, as the packet rewrite needs it. This is
/// the plain value the agent translates its mirror state into; NFTables knows nothing else of
/// services.
public struct ServicePortRule: Hashable, Sendable {
    /// The owning service, `namespace/name` (`default/bar-paris`); used in comments, chain
    /// names and error messages.
    public var service: String
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP).
    public var proto: UInt8
    public var port: UInt16
    /// The mirrored ClusterIPs (IPv4 and/or IPv6).
    public var addresses: [IPAddress]
    /// Live targets; empty means the service is rejected at once (TCP reset / ICMP unreachable).
    public var targets: [Target]

    /// One destination a connection may be rewritten to.
    public struct Target: Hashable, Comparable, Sendable {
        public var address: IPAddress
        public var port: UInt16
        /// Leave with the node's address (the target's cluster is marked `masquerade`).
        public var masquerade: Bool

        public init(address: IPAddress, port: UInt16, masquerade: Bool = false) {
            self.address = address
            self.port = port
            self.masquerade = masquerade
        }

        public static func < (lhs: Target, rhs: Target) -> Bool { (lhs.address, lhs.port) < (rhs.address, rhs.port) }
    }

    public init(service: String, proto: UInt8, port: UInt16, addresses: [IPAddress], targets: [Target]) {
        self.service = service
        self.proto = proto
        self.port = port
        self.addresses = addresses
        self.targets = targets
    }

    /// Unique per service port: `default/bar-paris/tcp/80`.
    public var id: String { "\(service)/\(protocolName(proto))/\(port)" }
}
