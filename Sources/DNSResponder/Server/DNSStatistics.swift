/// How many queries the responder handled and how, summed over its event loops; what
/// `mirror-agent dump` and `/metrics` show for DNS.
public struct DNSStatistics: Sendable, Equatable {
    /// Answers sent at once (from the record table, the cache, or a local error), by rcode
    /// name (`NOERROR`, `NXDOMAIN`, `REFUSED`, …).
    public var answeredByCode: [String: UInt64] = [:]
    /// Of those, answers served from the forwarding cache.
    public var cacheHits: UInt64 = 0
    /// Queries sent upstream (not in the table, not cached).
    public var forwarded: UInt64 = 0
    /// Messages dropped without an answer (unparseable, or responses sent to us).
    public var dropped: UInt64 = 0
    /// Each configured upstream's counters and health, in `--upstream` order.
    public var upstreams: [DNSUpstreamHealth] = []
    /// Queries received per listen address, when the caller runs several (the agent: its own
    /// address and the intercepted cluster DNS addresses).
    public var listeners: [DNSListenerStatistics] = []

    /// Every query received: answered at once, forwarded, or dropped.
    public var queries: UInt64 { answeredByCode.values.reduce(0, +) + forwarded + dropped }

    public init() {}

    /// Adds `other`'s query counters (not its upstreams) to these.
    public mutating func add(_ other: DNSStatistics) {
        answeredByCode.merge(other.answeredByCode, uniquingKeysWith: +)
        cacheHits += other.cacheHits
        forwarded += other.forwarded
        dropped += other.dropped
    }

    static func codeName(_ code: UInt8) -> String {
        switch code {
        case 0: "NOERROR"
        case 1: "FORMERR"
        case 2: "SERVFAIL"
        case 3: "NXDOMAIN"
        case 4: "NOTIMP"
        case 5: "REFUSED"
        default: "RCODE\(code)"
        }
    }
}

/// One listen address's share of the queries.
public struct DNSListenerStatistics: Sendable, Equatable, Codable {
    public var address: String
    /// A cluster DNS address answered in transparent mode.
    public var intercepted: Bool
    public var queries: UInt64

    public init(address: String, intercepted: Bool, queries: UInt64) {
        self.address = address
        self.intercepted = intercepted
        self.queries = queries
    }
}
