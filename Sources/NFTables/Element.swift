/// One part of a set key or map value.
public enum Value: Hashable, Sendable, CustomStringConvertible {
    case address(IPAddress)
    /// An IP protocol number (`inet_proto`).
    case proto(UInt8)
    /// A port (`inet_service`).
    case port(UInt16)
    /// A 32-bit number (`integer`, host byte order as the kernel's registers hold it).
    case number(UInt32)

    /// One or two words per value, tagged by kind (cheaper than the synthesized hash).
    public func hash(into hasher: inout Hasher) {
        switch self {
        case .address(let address): hasher.combine(address)
        case .proto(let number): hasher.combine(UInt64(1) << 56 | UInt64(number))
        case .port(let port): hasher.combine(UInt64(2) << 56 | UInt64(port))
        case .number(let number): hasher.combine(UInt64(3) << 56 | UInt64(number))
        }
    }

    public var description: String {
        switch self {
        case .address(let address): address.description
        case .proto(let number): protocolName(number)
        case .port(let port): String(port)
        case .number(let number): String(number)
        }
    }
}

/// The nft name of a protocol number (`tcp`, `udp`, `sctp`) or the number itself.
func protocolName(_ number: UInt8) -> String {
    switch number {
    case 6: "tcp"
    case 17: "udp"
    case 132: "sctp"
    default: String(number)
    }
}

/// What a verdict map element (or a rule) decides.
public enum Verdict: Hashable, Sendable, CustomStringConvertible {
    case accept
    case drop
    case jump(String)
    case goto(String)

    public var description: String {
        switch self {
        case .accept: "accept"
        case .drop: "drop"
        case .jump(let chain): "jump \(chain)"
        case .goto(let chain): "goto \(chain)"
        }
    }

    /// The chain this verdict refers to, if any.
    public var chain: String? {
        switch self {
        case .jump(let chain), .goto(let chain): chain
        default: nil
        }
    }
}

/// The value side of a map element.
public enum ElementData: Hashable, Sendable, CustomStringConvertible {
    case values(ValueList)
    case verdict(Verdict)

    public var description: String {
        switch self {
        case .values(let values): values.map(\.description).joined(separator: " . ")
        case .verdict(let verdict): verdict.description
        }
    }
}

/// A set or map element. Its identity within the set is ``key``.
public struct Element: Hashable, Sendable, CustomStringConvertible {
    public var key: ValueList
    /// The mapped value (maps only).
    public var data: ElementData?
    /// Shown by nft as `comment "…"`; the agent stores the owning service here.
    public var comment: String?

    public init(key: ValueList, data: ElementData? = nil, comment: String? = nil) {
        self.key = key
        self.data = data
        self.comment = comment
    }

    /// nft syntax, as inside `elements = { … }`.
    public var description: String {
        var text = key.map(\.description).joined(separator: " . ")
        if let comment { text += " comment \(quoted(comment))" }
        if let data { text += " : \(data)" }
        return text
    }
}

/// Packet and byte counts of one element, as the kernel reports them.
public struct Counter: Hashable, Sendable {
    public var packets: UInt64
    public var bytes: UInt64

    public init(packets: UInt64, bytes: UInt64) {
        self.packets = packets
        self.bytes = bytes
    }
}

/// A string literal in nft syntax (double quotes inside become single quotes).
func quoted(_ text: String) -> String {
    guard text.utf8.contains(UInt8(ascii: "\"")) else { return "\"" + text + "\"" }
    return "\"" + String(text.map { $0 == "\"" ? "'" : $0 }) + "\""
}
