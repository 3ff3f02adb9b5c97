/// The statements the agent's rules are made of: a deliberately small vocabulary, each with
/// an nft spelling and a libnftnl encoding.
public enum Expression: Hashable, Sendable {
    /// Which end of the packet an address or port match looks at.
    public enum Direction: Hashable, Sendable { case source, destination }

    /// `meta l4proto tcp`
    case l4proto(UInt8)
    /// `ip daddr 10.0.0.1` / `ip6 saddr …`
    case address(Direction, IPAddress)
    /// `th dport 53`
    case port(Direction, UInt16)
    /// `ip saddr 10.0.0.0/8`: the source lies in the prefix.
    case sourcePrefix(IPPrefix)
    /// `ip daddr & 0.0.0.15 == 0.0.0.3`: the destination's last byte, masked, equals a value.
    case addressLowBits(mask: UInt8, equals: UInt8)
    /// `ct status dnat` — the connection was destination-NATed.
    case ctStatusDNAT
    /// `ip daddr . meta l4proto . th dport @set`
    case slotLookup(set: String)
    /// `dnat ip to ip daddr . meta l4proto . th dport map @set`
    case slotDNATMap(set: String)
    /// `ip daddr . meta l4proto . th dport vmap @set`
    case slotVerdictMap(set: String)
    /// `dnat ip to ip daddr . meta l4proto . th dport . numgen random mod N map @set`: one
    /// lookup picks target k of a service's N targets, k drawn uniformly.
    case slotBalanceMap(set: String, modulus: UInt32)
    /// `numgen random mod N == k`
    case numgen(modulus: UInt32, equals: UInt32)
    /// `dnat to 10.0.0.1:8080`
    case dnat(IPAddress, UInt16)
    /// `reject with tcp reset`
    case rejectWithTCPReset
    /// `reject` (ICMP / ICMPv6 port unreachable)
    case rejectPortUnreachable
    /// `masquerade fully-random`: source ports drawn at random, not in sequence, so bursts of
    /// new flows from many pods to a few targets do not race for the same port and lose
    /// packets to conntrack insert failures (why kube-proxy switched too).
    case masquerade
    /// `socket transparent 0`: a local socket exists for the packet (looked up by its
    /// addresses and ports; in the output hook, the sending socket). With it, a rule applies
    /// only while some process listens — the kernel itself falls back when it is gone.
    case socketPresent
    case notrack
    case counter
    /// `accept`: ends this chain's evaluation of the packet (later hooks still run).
    case accept
    case drop

    /// nft syntax in a table of `family`.
    public func text(family: Family) -> String {
        let ip = family.addressKeyword
        let slot = "\(ip) daddr . meta l4proto . th dport"
        switch self {
        case .l4proto(let number): return "meta l4proto \(protocolName(number))"
        case .address(let direction, let address): return "\(ip) \(direction == .source ? "saddr" : "daddr") \(address)"
        case .port(let direction, let port): return "th \(direction == .source ? "sport" : "dport") \(port)"
        case .sourcePrefix(let prefix): return "\(ip) saddr \(prefix)"
        case .addressLowBits(let mask, let value):
            return family == .ip ? "\(ip) daddr & 0.0.0.\(mask) == 0.0.0.\(value)"
                : "\(ip) daddr & ::\(String(mask, radix: 16)) == ::\(String(value, radix: 16))"
        case .ctStatusDNAT: return "ct status dnat"
        case .slotLookup(let set): return "\(slot) @\(set)"
        case .slotDNATMap(let set): return "dnat \(ip) to \(slot) map @\(set)"
        case .slotVerdictMap(let set): return "\(slot) vmap @\(set)"
        case .slotBalanceMap(let set, let modulus): return "dnat \(ip) to \(slot) . numgen random mod \(modulus) map @\(set)"
        case .numgen(let modulus, let equals): return "numgen random mod \(modulus) == \(equals)"
        case .dnat(let address, let port):
            return family == .ip ? "dnat to \(address):\(port)" : "dnat to [\(address)]:\(port)"
        case .rejectWithTCPReset: return "reject with tcp reset"
        case .rejectPortUnreachable: return family == .ip ? "reject with icmp port-unreachable" : "reject with icmpv6 port-unreachable"
        case .masquerade: return "masquerade fully-random"
        case .socketPresent: return "socket transparent 0"
        case .notrack: return "notrack"
        case .counter: return "counter"
        case .accept: return "accept"
        case .drop: return "drop"
        }
    }

    /// The set this expression refers to, if any.
    public var setName: String? {
        switch self {
        case .slotLookup(let set), .slotDNATMap(let set), .slotVerdictMap(let set), .slotBalanceMap(let set, _): set
        default: nil
        }
    }
}

/// A rule: expressions evaluated in order, identified by a fingerprint of its nft text.
///
/// The fingerprint travels in the rule's comment (`NFTNL_UDATA_RULE_COMMENT`), so a rule read
/// back from the kernel — whether the agent or `nft -f` wrote it — compares equal to the
/// desired one without decoding its expressions.
public struct Rule: Hashable, Sendable {
    /// Empty for rules read back from the kernel.
    public let expressions: [Expression]
    /// The comment as stored in the kernel: the caller's comment plus `#` and the fingerprint.
    public let storedComment: String
    /// The table family (nil for rules read back, which are known only by their comment).
    private let family: Family?

    /// A desired rule in a table of `family`.
    public init(family: Family, _ expressions: [Expression], comment: String? = nil) {
        self.expressions = expressions
        self.family = family
        let body = expressions.map { $0.text(family: family) }.joined(separator: " ")
        storedComment = (comment.map { $0 + " " } ?? "") + "#" + Rule.fingerprint(body)
    }

    /// A rule read back from the kernel, known only by its stored comment.
    public init(storedComment: String) {
        expressions = []
        family = nil
        self.storedComment = storedComment
    }

    /// The nft text (expressions and comment) for printing; built on demand, since a large
    /// ruleset is printed far less often than it is built.
    public var text: String {
        guard let family else { return "# rule with comment " + quoted(storedComment) }
        return expressions.map { $0.text(family: family) }.joined(separator: " ") + " comment " + quoted(storedComment)
    }

    public static func == (lhs: Rule, rhs: Rule) -> Bool { lhs.storedComment == rhs.storedComment }
    public func hash(into hasher: inout Hasher) { hasher.combine(storedComment) }

    /// 32-bit FNV-1a of the rule text, as 8 hex digits: stable across runs and versions.
    static func fingerprint(_ text: String) -> String {
        var hash: UInt32 = 0x811c_9dc5
        for byte in text.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 0x0100_0193
        }
        let digits = String(hash, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }
}
