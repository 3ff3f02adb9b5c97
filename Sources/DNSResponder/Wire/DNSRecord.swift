/// One resource record: owner name, class, time to live and typed data.
public struct DNSRecord: Hashable, Sendable {
    public var name: DNSName
    public var `class`: DNSClass
    public var ttl: UInt32
    public var data: DNSRecordData

    public init(name: DNSName, class: DNSClass = .in, ttl: UInt32, data: DNSRecordData) {
        self.name = name
        self.class = `class`
        self.ttl = ttl
        self.data = data
    }

    public var type: DNSRecordType { data.type }
}

/// One entry of the question section.
public struct DNSQuestion: Hashable, Sendable {
    public var name: DNSName
    public var type: DNSRecordType
    public var `class`: DNSClass

    public init(name: DNSName, type: DNSRecordType, class: DNSClass = .in) {
        self.name = name
        self.type = type
        self.class = `class`
    }
}

/// An EDNS(0) OPT pseudo-record (RFC 6891), unpacked.
public struct DNSEDNS: Hashable, Sendable {
    /// The largest UDP payload the sender can receive.
    public var udpPayloadSize: UInt16
    /// The upper 8 bits of the 12-bit response code.
    public var extendedResponseCode: UInt8
    public var version: UInt8
    /// DO: the sender wants DNSSEC records.
    public var dnssecOK: Bool
    /// Options as (code, data) pairs, in order.
    public var options: [DNSEDNSOption]

    public init(udpPayloadSize: UInt16 = UInt16(DNSLimits.advertisedUDPSize), extendedResponseCode: UInt8 = 0,
                version: UInt8 = 0, dnssecOK: Bool = false, options: [DNSEDNSOption] = []) {
        self.udpPayloadSize = udpPayloadSize
        self.extendedResponseCode = extendedResponseCode
        self.version = version
        self.dnssecOK = dnssecOK
        self.options = options
    }
}

/// One EDNS option; unknown codes are kept and ignored.
public struct DNSEDNSOption: Hashable, Sendable {
    public var code: UInt16
    public var data: [UInt8]

    public init(code: UInt16, data: [UInt8]) {
        self.code = code
        self.data = data
    }
}
