/// A DNS resource record type (RFC 1035 §3.2.2 and successors).
///
/// An open set: any 16-bit value is a valid type, and unknown ones are carried opaquely
/// (RFC 3597). The named constants are the ones this responder builds or inspects.
public struct DNSRecordType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let a = DNSRecordType(rawValue: 1)
    public static let ns = DNSRecordType(rawValue: 2)
    public static let cname = DNSRecordType(rawValue: 5)
    public static let soa = DNSRecordType(rawValue: 6)
    public static let ptr = DNSRecordType(rawValue: 12)
    public static let mx = DNSRecordType(rawValue: 15)
    public static let txt = DNSRecordType(rawValue: 16)
    public static let aaaa = DNSRecordType(rawValue: 28)
    public static let srv = DNSRecordType(rawValue: 33)
    public static let opt = DNSRecordType(rawValue: 41)
    public static let ixfr = DNSRecordType(rawValue: 251)
    public static let axfr = DNSRecordType(rawValue: 252)
    public static let any = DNSRecordType(rawValue: 255)

    public var description: String {
        switch self {
        case .a: "A"
        case .ns: "NS"
        case .cname: "CNAME"
        case .soa: "SOA"
        case .ptr: "PTR"
        case .mx: "MX"
        case .txt: "TXT"
        case .aaaa: "AAAA"
        case .srv: "SRV"
        case .opt: "OPT"
        case .ixfr: "IXFR"
        case .axfr: "AXFR"
        case .any: "ANY"
        default: "TYPE\(rawValue)"
        }
    }
}

/// A DNS class. Only `IN` carries data here; `ANY` is accepted in questions.
public struct DNSClass: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let `in` = DNSClass(rawValue: 1)
    public static let chaos = DNSClass(rawValue: 3)
    public static let any = DNSClass(rawValue: 255)

    public var description: String {
        switch self {
        case .in: "IN"
        case .chaos: "CH"
        case .any: "ANY"
        default: "CLASS\(rawValue)"
        }
    }
}

/// A response code, including the EDNS extended ones (whose upper 8 bits travel in OPT).
public struct DNSResponseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let noError = DNSResponseCode(rawValue: 0)
    public static let formatError = DNSResponseCode(rawValue: 1)
    public static let serverFailure = DNSResponseCode(rawValue: 2)
    public static let nameError = DNSResponseCode(rawValue: 3)
    public static let notImplemented = DNSResponseCode(rawValue: 4)
    public static let refused = DNSResponseCode(rawValue: 5)
    /// EDNS version not supported (RFC 6891); needs OPT to be expressed.
    public static let badVersion = DNSResponseCode(rawValue: 16)

    public var description: String {
        switch self {
        case .noError: "NOERROR"
        case .formatError: "FORMERR"
        case .serverFailure: "SERVFAIL"
        case .nameError: "NXDOMAIN"
        case .notImplemented: "NOTIMP"
        case .refused: "REFUSED"
        case .badVersion: "BADVERS"
        default: "RCODE\(rawValue)"
        }
    }
}

/// Sizes and limits from the DNS specifications, in one place.
public enum DNSLimits {
    /// A message header is always 12 bytes.
    public static let headerSize = 12
    /// RFC 1035: a label is at most 63 bytes.
    public static let maxLabelLength = 63
    /// RFC 1035: a name in wire form, length bytes and root included, is at most 255 bytes.
    public static let maxNameLength = 255
    /// The UDP payload limit for clients that do not use EDNS.
    public static let classicUDPSize = 512
    /// The UDP payload size this responder advertises and never exceeds (DNS flag day 2020).
    public static let advertisedUDPSize = 1232
    /// A compression pointer's two top bits.
    static let pointerMask: UInt8 = 0xC0
}
