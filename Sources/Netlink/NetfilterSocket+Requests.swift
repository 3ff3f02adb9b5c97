#if canImport(Glibc)
import Glibc
#endif
import CMnl

/// A dump was interrupted because the ruleset changed while the kernel was sending it
/// (`NLM_F_DUMP_INTR`); the reader must start again.
public struct DumpInterrupted: Error, CustomStringConvertible {
    public var description: String { "the ruleset changed during a dump; read again" }
}

extension NetfilterSocket {
    /// Sends one request and passes every reply message to `onMessage` until the kernel says
    /// it is done (`NLMSG_DONE`, or the ack of a non-dump request).
    ///
    /// - Parameters:
    ///   - build: writes the request at the pointer with the given sequence number, returns its length.
    ///   - onMessage: called for each data message (not for `NLMSG_DONE`/acks).
    /// - Throws: ``NetlinkError`` with the kernel's errno when it refuses the request (ENOENT
    ///   for a missing table, …), ``DumpInterrupted`` when a dump was interrupted.
    public func request(context: String, build: (UnsafeMutableRawPointer, UInt32) -> Int,
                        onMessage: (NetlinkMessage) throws -> Void) throws {
        drain()
        let sequence = reserveSequences(1)
        var buffer = [UInt8](repeating: 0, count: 8192)
        let length = buffer.withUnsafeMutableBytes { build($0.baseAddress!, sequence) }
        try buffer.withUnsafeBytes { try sendRaw(UnsafeRawBufferPointer(rebasing: $0[0 ..< length]), context: context) }
        var done = false
        var interrupted = false
        var failure: Int32 = 0
        while !done {
            guard let datagram = try receiveRaw(wait: true, context: context) else { continue }
            try NetlinkMessage.forEach(in: datagram) { message in
                guard message.sequence == sequence else { return true }
                if message.flags & UInt16(NLM_F_DUMP_INTR) != 0 { interrupted = true }
                switch Int32(message.type) {
                case NLMSG_DONE:
                    done = true
                    return false
                case NLMSG_ERROR:
                    let error = message.bytes.count >= 20 ? message.bytes.loadUnaligned(fromByteOffset: 16, as: Int32.self) : -EPROTO
                    failure = -error
                    done = true
                    return false
                default:
                    try onMessage(message)
                    return true
                }
            }
        }
        if failure != 0 { throw NetlinkError(call: "netlink request", errno: failure, context: context) }
        if interrupted { throw DumpInterrupted() }
    }

    /// The current nf_tables ruleset generation (`NFT_MSG_GETGEN`); it changes with every
    /// committed batch, from any process.
    public func rulesetGeneration() throws -> UInt32 {
        var generation: UInt32?
        try request(context: "reading the ruleset generation", build: { buffer, sequence in
            let header = buffer.assumingMemoryBound(to: nlmsghdr.self)
            header.pointee = nlmsghdr(nlmsg_len: 20, nlmsg_type: UInt16(NFNL_SUBSYS_NFTABLES << 8) | UInt16(NFT_MSG_GETGEN.rawValue),
                                      nlmsg_flags: UInt16(NLM_F_REQUEST | NLM_F_ACK), nlmsg_seq: sequence, nlmsg_pid: 0)
            (buffer + 16).assumingMemoryBound(to: nfgenmsg.self).pointee =
                nfgenmsg(nfgen_family: UInt8(AF_UNSPEC), version: UInt8(NFNETLINK_V0), res_id: 0)
            return 20
        }, onMessage: { message in
            for attribute in NetlinkMessage.attributes(in: message.bytes, from: 20)
            where attribute.type == UInt16(NFTA_GEN_ID.rawValue) && attribute.payload.count >= 4 {
                generation = UInt32(bigEndian: attribute.payload.loadUnaligned(as: UInt32.self))
            }
        })
        guard let generation else {
            throw NetlinkError(call: "NFT_MSG_GETGEN", errno: EPROTO, context: "the kernel's reply carried no generation id")
        }
        return generation
    }
}
