#if canImport(Glibc)
import Glibc
#endif
import CMnl

/// Which connection-tracking entries to delete: flows to one original destination
/// (`address:port` over `proto`) whose replies come from one source — for NATed flows, the
/// target the first packet was rewritten to.
public struct ConntrackSelector: Hashable, Sendable, CustomStringConvertible {
    /// `AF_INET` (2) or `AF_INET6` (10).
    public var family: UInt8
    /// IP protocol number (17 UDP, 132 SCTP, …).
    public var proto: UInt8
    /// Network-order address bytes (4 or 16) and port of the original direction's destination.
    public var destination: [UInt8]
    public var destinationPort: UInt16
    /// The reply direction's source: where the flow really goes.
    public var replySource: [UInt8]
    public var replySourcePort: UInt16

    public init(family: UInt8, proto: UInt8, destination: [UInt8], destinationPort: UInt16, replySource: [UInt8], replySourcePort: UInt16) {
        self.family = family
        self.proto = proto
        self.destination = destination
        self.destinationPort = destinationPort
        self.replySource = replySource
        self.replySourcePort = replySourcePort
    }

    public var description: String {
        "proto \(proto) to \(Self.text(destination)):\(destinationPort) answered by \(Self.text(replySource)):\(replySourcePort)"
    }

    static func text(_ bytes: [UInt8]) -> String {
        bytes.count == 4 ? bytes.map(String.init).joined(separator: ".")
            : stride(from: 0, to: bytes.count, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }.joined(separator: ":")
    }
}

/// The kernel's connection-tracking table through ctnetlink: deletes the entries of flows
/// pinned to a target that is gone. NAT rules only see a flow's first packet, so without this
/// a long-lived UDP flow keeps going to a removed target as long as it keeps sending.
///
/// The kernel can only find an entry by its whole tuple (the client's address and port are
/// not known here) or by walking the table, which costs about half a microsecond per entry of
/// every namespace (~45 ms at 100k entries). So selectors are grouped by the target that
/// answers the flows: one dump per removed target address, filtered in the kernel on that
/// reply source (`CTA_FILTER`, so no unrelated entry crosses into user space), then one
/// delete per matching entry by its exact original tuple.
public final class ConntrackTable {
    private let socket: NetfilterSocket

    /// Opens a netfilter socket in the current network namespace.
    public init() throws {
        socket = try NetfilterSocket(receiveBufferBytes: 1 << 20)
    }

    public func close() { socket.close() }

    /// Checks that ctnetlink answers (the `nf_conntrack_netlink` module is there) with a
    /// filtered dump that matches nothing.
    /// - Throws: ``NetlinkError`` naming what failed.
    public func probe() throws {
        _ = try entries(family: UInt8(AF_INET), proto: 17, answeredBy: [0, 0, 0, 0])
    }

    /// Deletes every entry one of `selectors` matches; returns how many were deleted. Entries
    /// that expire meanwhile are not counted and are no error.
    public func deleteFlows(_ selectors: some Sequence<ConntrackSelector>) throws -> Int {
        var groups: [Group: Set<Match>] = [:]
        for selector in selectors {
            groups[Group(family: selector.family, proto: selector.proto, replySource: selector.replySource), default: []]
                .insert(Match(destination: selector.destination, destinationPort: selector.destinationPort, replySourcePort: selector.replySourcePort))
        }
        var deleted = 0
        for (group, matches) in groups {
            for entry in try entries(family: group.family, proto: group.proto, answeredBy: group.replySource) where matches.contains(entry.match) {
                do {
                    try socket.request(context: "deleting the conntrack entry of a flow answered by \(ConntrackSelector.text(group.replySource))", build: { buffer, sequence in
                        let header = Self.header(buffer, type: IPCTNL_MSG_CT_DELETE, flags: NLM_F_REQUEST | NLM_F_ACK, sequence: sequence, family: group.family)
                        entry.originalTuple.withUnsafeBytes {
                            mnl_attr_put(header, UInt16(CTA_TUPLE_ORIG.rawValue) | UInt16(NLA_F_NESTED), $0.count, $0.baseAddress)
                        }
                        return Int(header.pointee.nlmsg_len)
                    }, onMessage: { _ in })
                    deleted += 1
                } catch let error as NetlinkError where error.errno == ENOENT {
                    continue
                }
            }
        }
        return deleted
    }

    private struct Group: Hashable {
        var family: UInt8
        var proto: UInt8
        var replySource: [UInt8]
    }

    private struct Match: Hashable {
        var destination: [UInt8]
        var destinationPort: UInt16
        var replySourcePort: UInt16
    }

    private struct Entry {
        var match: Match
        /// The raw `CTA_TUPLE_ORIG` payload, sent back as is to delete the entry.
        var originalTuple: [UInt8]
    }

    /// The entries of `proto` flows whose replies come from `address`, filtered by the kernel.
    private func entries(family: UInt8, proto: UInt8, answeredBy address: [UInt8]) throws -> [Entry] {
        for attempt in 1 ... 3 {
            var entries: [Entry] = []
            do {
                try socket.request(context: "listing the conntrack entries of flows answered by \(ConntrackSelector.text(address))", build: { buffer, sequence in
                    let header = Self.header(buffer, type: IPCTNL_MSG_CT_GET, flags: NLM_F_REQUEST | NLM_F_DUMP, sequence: sequence, family: family)
                    let tuple = mnl_attr_nest_start(header, UInt16(CTA_TUPLE_REPLY.rawValue))
                    let ip = mnl_attr_nest_start(header, UInt16(CTA_TUPLE_IP.rawValue))
                    let type = family == UInt8(AF_INET) ? CTA_IP_V4_SRC : CTA_IP_V6_SRC
                    address.withUnsafeBytes { mnl_attr_put(header, UInt16(type.rawValue), $0.count, $0.baseAddress) }
                    mnl_attr_nest_end(header, ip)
                    let protocolNest = mnl_attr_nest_start(header, UInt16(CTA_TUPLE_PROTO.rawValue))
                    mnl_attr_put_u8(header, UInt16(CTA_PROTO_NUM.rawValue), proto)
                    mnl_attr_nest_end(header, protocolNest)
                    mnl_attr_nest_end(header, tuple)
                    let filter = mnl_attr_nest_start(header, UInt16(CTA_FILTER.rawValue))
                    mnl_attr_put_u32(header, UInt16(CTA_FILTER_ORIG_FLAGS.rawValue), 0)
                    mnl_attr_put_u32(header, UInt16(CTA_FILTER_REPLY_FLAGS.rawValue), FilterFlag.sourceAddress | FilterFlag.protocolNumber)
                    mnl_attr_nest_end(header, filter)
                    return Int(header.pointee.nlmsg_len)
                }, onMessage: { message in
                    if let entry = Self.entry(message) { entries.append(entry) }
                })
                return entries
            } catch is DumpInterrupted where attempt < 3 {
                continue
            }
        }
        return []
    }

    /// The destination, ports and raw original tuple of one dumped entry.
    private static func entry(_ message: NetlinkMessage) -> Entry? {
        var original: [UInt8]?
        var destination: [UInt8]?
        var destinationPort: UInt16?
        var replySourcePort: UInt16?
        for attribute in message.nfnetlinkAttributes {
            switch attribute.type & 0x3fff {
            case UInt16(CTA_TUPLE_ORIG.rawValue):
                original = Array(attribute.payload)
                NetlinkMessage.forEachAttribute(in: attribute.payload) { type, payload in
                    switch type & 0x3fff {
                    case UInt16(CTA_TUPLE_IP.rawValue):
                        NetlinkMessage.forEachAttribute(in: payload) { ipType, address in
                            if ipType == UInt16(CTA_IP_V4_DST.rawValue) || ipType == UInt16(CTA_IP_V6_DST.rawValue) { destination = Array(address) }
                        }
                    case UInt16(CTA_TUPLE_PROTO.rawValue):
                        destinationPort = port(in: payload, CTA_PROTO_DST_PORT)
                    default: break
                    }
                }
            case UInt16(CTA_TUPLE_REPLY.rawValue):
                NetlinkMessage.forEachAttribute(in: attribute.payload) { type, payload in
                    if type & 0x3fff == UInt16(CTA_TUPLE_PROTO.rawValue) { replySourcePort = port(in: payload, CTA_PROTO_SRC_PORT) }
                }
            default: break
            }
        }
        guard let original, let destination, let destinationPort, let replySourcePort else { return nil }
        return Entry(match: Match(destination: destination, destinationPort: destinationPort, replySourcePort: replySourcePort), originalTuple: original)
    }

    private static func port(in proto: UnsafeRawBufferPointer, _ kind: ctattr_l4proto) -> UInt16? {
        var found: UInt16?
        NetlinkMessage.forEachAttribute(in: proto) { type, payload in
            if type == UInt16(kind.rawValue), payload.count >= 2 { found = UInt16(bigEndian: payload.loadUnaligned(as: UInt16.self)) }
        }
        return found
    }

    /// The kernel's filter bits (`CTA_FILTER_F_*` in nf_conntrack_netlink.c; not in the uapi
    /// headers): which fields of the filter tuple must match.
    private enum FilterFlag {
        static let sourceAddress: UInt32 = 1 << 0
        static let protocolNumber: UInt32 = 1 << 3
    }

    private static func header(_ buffer: UnsafeMutableRawPointer, type: cntl_msg_types, flags: Int32, sequence: UInt32,
                               family: UInt8) -> UnsafeMutablePointer<nlmsghdr> {
        let header = mnl_nlmsg_put_header(buffer)!
        header.pointee.nlmsg_type = UInt16(NFNL_SUBSYS_CTNETLINK << 8) | UInt16(type.rawValue)
        header.pointee.nlmsg_flags = UInt16(flags)
        header.pointee.nlmsg_seq = sequence
        let generic = mnl_nlmsg_put_extra_header(header, MemoryLayout<nfgenmsg>.size)!.assumingMemoryBound(to: nfgenmsg.self)
        generic.pointee = nfgenmsg(nfgen_family: family, version: UInt8(NFNETLINK_V0), res_id: 0)
        return header
    }
}
