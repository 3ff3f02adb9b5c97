/// The data of an SOA record: who is authoritative for a zone and how long negative
/// answers may be cached (`minimum`, RFC 2308).
public struct DNSSOAData: Hashable, Sendable {
    public var primaryServer: DNSName
    public var mailbox: DNSName
    public var serial: UInt32
    public var refresh: UInt32
    public var retry: UInt32
    public var expire: UInt32
    public var minimum: UInt32

    public init(primaryServer: DNSName, mailbox: DNSName, serial: UInt32, refresh: UInt32 = 7200,
                retry: UInt32 = 1800, expire: UInt32 = 86400, minimum: UInt32 = 5) {
        self.primaryServer = primaryServer
        self.mailbox = mailbox
        self.serial = serial
        self.refresh = refresh
        self.retry = retry
        self.expire = expire
        self.minimum = minimum
    }
}

/// The typed data of a resource record. Types this responder does not interpret are kept
/// as opaque bytes (RFC 3597), so forwarded answers pass through unchanged.
public enum DNSRecordData: Hashable, Sendable {
    /// An IPv4 address, 4 bytes in network order.
    case a([UInt8])
    /// An IPv6 address, 16 bytes in network order.
    case aaaa([UInt8])
    case cname(DNSName)
    case ptr(DNSName)
    case ns(DNSName)
    case srv(priority: UInt16, weight: UInt16, port: UInt16, target: DNSName)
    case soa(DNSSOAData)
    /// One or more character strings of at most 255 bytes each.
    case txt([[UInt8]])
    /// Any other type, as raw record data.
    case opaque(type: DNSRecordType, data: [UInt8])

    /// The record type this data belongs to.
    public var type: DNSRecordType {
        switch self {
        case .a: .a
        case .aaaa: .aaaa
        case .cname: .cname
        case .ptr: .ptr
        case .ns: .ns
        case .srv: .srv
        case .soa: .soa
        case .txt: .txt
        case .opaque(let type, _): type
        }
    }

    /// Reads `length` bytes of record data of `type` at the reader's position.
    ///
    /// Names inside are decompressed against the whole message; the data must end exactly
    /// at `length`.
    static func read(type: DNSRecordType, length: Int, from reader: inout DNSWireReader) throws -> DNSRecordData {
        let start = reader.offset
        guard length <= reader.remaining else { throw DNSWireError.truncated(field: "record data", offset: start) }
        let end = start + length
        let data: DNSRecordData
        switch type {
        case .a:
            guard length == 4 else { throw DNSWireError.badRecordData(type: type, offset: start) }
            data = .a(try reader.readBytes(4, "A data"))
        case .aaaa:
            guard length == 16 else { throw DNSWireError.badRecordData(type: type, offset: start) }
            data = .aaaa(try reader.readBytes(16, "AAAA data"))
        case .cname:
            data = .cname(try reader.readName("CNAME target"))
        case .ptr:
            data = .ptr(try reader.readName("PTR target"))
        case .ns:
            data = .ns(try reader.readName("NS target"))
        case .srv:
            data = .srv(priority: try reader.readU16("SRV priority"), weight: try reader.readU16("SRV weight"),
                        port: try reader.readU16("SRV port"), target: try reader.readName("SRV target"))
        case .soa:
            data = .soa(DNSSOAData(primaryServer: try reader.readName("SOA mname"), mailbox: try reader.readName("SOA rname"),
                                   serial: try reader.readU32("SOA serial"), refresh: try reader.readU32("SOA refresh"),
                                   retry: try reader.readU32("SOA retry"), expire: try reader.readU32("SOA expire"),
                                   minimum: try reader.readU32("SOA minimum")))
        case .txt:
            var strings: [[UInt8]] = []
            while reader.offset < end {
                let count = Int(try reader.readU8("TXT length"))
                guard reader.offset + count <= end else { throw DNSWireError.badRecordData(type: type, offset: start) }
                strings.append(try reader.readBytes(count, "TXT string"))
            }
            guard !strings.isEmpty else { throw DNSWireError.badRecordData(type: type, offset: start) }
            data = .txt(strings)
        default:
            data = .opaque(type: type, data: try reader.readBytes(length, "record data"))
        }
        guard reader.offset == end else { throw DNSWireError.badRecordData(type: type, offset: start) }
        return data
    }

    /// Appends the data (without its length) to `writer`. Names in CNAME, PTR, NS and SOA
    /// are compressed (RFC 1035); SRV targets are not (RFC 2782).
    func write(to writer: inout DNSMessageWriter) throws {
        switch self {
        case .a(let bytes), .aaaa(let bytes):
            writer.append(bytes)
        case .cname(let name), .ptr(let name), .ns(let name):
            try writer.append(name, compress: true)
        case let .srv(priority, weight, port, target):
            writer.append(priority)
            writer.append(weight)
            writer.append(port)
            try writer.append(target, compress: false)
        case .soa(let soa):
            try writer.append(soa.primaryServer, compress: true)
            try writer.append(soa.mailbox, compress: true)
            for value in [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum] { writer.append(value) }
        case .txt(let strings):
            for string in strings {
                let slice = string.prefix(255)
                writer.append(UInt8(slice.count))
                writer.append(Array(slice))
            }
        case .opaque(_, let bytes):
            writer.append(bytes)
        }
    }
}
