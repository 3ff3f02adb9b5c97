/// The 12-byte header of a DNS message (RFC 1035 §4.1.1), with its flags unpacked.
public struct DNSHeader: Hashable, Sendable {
    public var id: UInt16
    /// The raw flags word: QR, opcode, AA, TC, RD, RA, Z, AD, CD and the 4-bit rcode.
    public var flags: UInt16
    public var questionCount: UInt16
    public var answerCount: UInt16
    public var authorityCount: UInt16
    public var additionalCount: UInt16

    public init(id: UInt16 = 0, flags: UInt16 = 0, questionCount: UInt16 = 0, answerCount: UInt16 = 0,
                authorityCount: UInt16 = 0, additionalCount: UInt16 = 0) {
        self.id = id
        self.flags = flags
        self.questionCount = questionCount
        self.answerCount = answerCount
        self.authorityCount = authorityCount
        self.additionalCount = additionalCount
    }

    // Flag bit positions in the flags word.
    static let qrBit: UInt16 = 0x8000
    static let aaBit: UInt16 = 0x0400
    static let tcBit: UInt16 = 0x0200
    static let rdBit: UInt16 = 0x0100
    static let raBit: UInt16 = 0x0080
    static let adBit: UInt16 = 0x0020
    static let cdBit: UInt16 = 0x0010

    /// QR: set in responses.
    public var isResponse: Bool {
        get { flags & Self.qrBit != 0 }
        set { set(Self.qrBit, newValue) }
    }

    /// The 4-bit operation code; 0 is a standard query.
    public var opcode: UInt8 {
        get { UInt8((flags >> 11) & 0xF) }
        set { flags = (flags & ~0x7800) | (UInt16(newValue & 0xF) << 11) }
    }

    /// AA: the answer comes from the authority for the name.
    public var isAuthoritative: Bool {
        get { flags & Self.aaBit != 0 }
        set { set(Self.aaBit, newValue) }
    }

    /// TC: the message was cut to fit the transport; retry over TCP.
    public var isTruncated: Bool {
        get { flags & Self.tcBit != 0 }
        set { set(Self.tcBit, newValue) }
    }

    /// RD: the client wants recursion.
    public var recursionDesired: Bool {
        get { flags & Self.rdBit != 0 }
        set { set(Self.rdBit, newValue) }
    }

    /// RA: the server offers recursion.
    public var recursionAvailable: Bool {
        get { flags & Self.raBit != 0 }
        set { set(Self.raBit, newValue) }
    }

    /// CD: the client does its own DNSSEC checking.
    public var checkingDisabled: Bool {
        get { flags & Self.cdBit != 0 }
        set { set(Self.cdBit, newValue) }
    }

    /// The low 4 bits of the response code (the rest travel in OPT).
    public var responseCode: DNSResponseCode {
        get { DNSResponseCode(rawValue: flags & 0xF) }
        set { flags = (flags & ~0xF) | (newValue.rawValue & 0xF) }
    }

    private mutating func set(_ bit: UInt16, _ on: Bool) {
        if on { flags |= bit } else { flags &= ~bit }
    }
}
