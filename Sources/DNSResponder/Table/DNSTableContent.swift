/// The plain value a ``DNSRecordTable`` is built from: the zones this responder speaks for,
/// the names it owns, and their records.
///
/// The responder knows nothing of where this comes from (a mirror feed, a file, a test);
/// whoever owns that knowledge translates it into this value.
public struct DNSTableContent: Sendable, Equatable {
    /// Zones whose SOA goes into negative answers for the owned names inside them.
    public var zones: [DNSZone]
    /// Names at and below which the responder is the authority: queries for them are never
    /// forwarded. Every record owner is also owned.
    public var ownedNames: [DNSName]
    public var records: [DNSRecord]

    public init(zones: [DNSZone] = [], ownedNames: [DNSName] = [], records: [DNSRecord] = []) {
        self.zones = zones
        self.ownedNames = ownedNames
        self.records = records
    }
}

/// A zone apex and its SOA, used as the authority of negative answers.
public struct DNSZone: Sendable, Equatable {
    public var origin: DNSName
    public var soa: DNSSOAData
    /// The SOA record's own TTL. The negative-caching time clients use is the smaller of
    /// this and `soa.minimum` (RFC 2308); the table caps both at
    /// ``DNSRecordTable/maximumNegativeTTL``.
    public var ttl: UInt32

    public init(origin: DNSName, soa: DNSSOAData, ttl: UInt32) {
        self.origin = origin
        self.soa = soa
        self.ttl = ttl
    }

    /// A conventional SOA for `origin`: `ns.dns.<origin>` / `hostmaster.<origin>`, as
    /// CoreDNS's kubernetes plugin writes it.
    public static func standard(origin: DNSName, serial: UInt32, negativeTTL: UInt32) throws -> DNSZone {
        let text = origin.description == "." ? "" : origin.description
        let soa = DNSSOAData(primaryServer: try DNSName("ns.dns." + text), mailbox: try DNSName("hostmaster." + text),
                             serial: serial, minimum: negativeTTL)
        return DNSZone(origin: origin, soa: soa, ttl: negativeTTL)
    }
}
