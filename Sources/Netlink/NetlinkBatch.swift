#if canImport(Glibc)
import Glibc
#endif
import CMnl

/// A netfilter batch: `NFNL_MSG_BATCH_BEGIN`, any number of messages, `NFNL_MSG_BATCH_END`,
/// laid out back to back in one buffer so the kernel applies all of them or none.
///
/// Each message gets its own sequence number; ``records`` remembers where each one sits and
/// which caller-defined subject it belongs to, so that an error the kernel reports for
/// sequence number N can be traced back to the object that caused it.
///
/// Not thread-safe: build a batch on one thread, then send it.
public final class NetlinkBatch {
    /// Where one message sits in the batch and what it is about.
    public struct Record: Sendable {
        public var sequence: UInt32
        public var offset: Int
        public var length: Int
        /// An index the caller uses to name the object (service, set, chain) behind the message.
        public var subject: Int
    }

    /// The messages between begin and end, in order.
    public private(set) var records: [Record] = []
    /// The generation the batch is bound to, if any.
    public let generation: UInt32?
    private var storage: UnsafeMutableRawPointer
    private var capacity: Int
    private var length = 0
    private var nextSequence: UInt32
    private let beginSequence: UInt32
    private var finished = false

    /// Starts a batch whose messages are numbered from `firstSequence`.
    ///
    /// - Parameter generation: when set, the begin message carries `NFNL_BATCH_GENID` and the
    ///   kernel refuses the whole batch with `ERESTART` if the ruleset generation differs.
    public init(firstSequence: UInt32, generation: UInt32? = nil, initialCapacity: Int = 1 << 16) {
        capacity = max(initialCapacity, 4096)
        guard let memory = malloc(capacity) else { fatalError("out of memory allocating a netlink batch") }
        storage = memory
        self.generation = generation
        beginSequence = firstSequence
        nextSequence = firstSequence &+ 1
        appendControl(type: UInt16(NFNL_MSG_BATCH_BEGIN), sequence: firstSequence, generation: generation)
    }

    deinit { free(storage) }

    /// The sequence number of the begin message (the kernel reports `ERESTART` against it).
    public var beginSequenceNumber: UInt32 { beginSequence }
    /// The sequence number the end message carries (valid after ``finish()``).
    public private(set) var endSequenceNumber: UInt32 = 0
    /// The number of messages between begin and end.
    public var count: Int { records.count }
    /// Bytes in the batch so far.
    public var byteCount: Int { length }

    /// Appends one message.
    ///
    /// - Parameters:
    ///   - subject: the caller's index for the object the message is about.
    ///   - maximumLength: an upper bound on the message size; that much room is reserved.
    ///   - build: writes one complete netlink message (header included) at the pointer, using
    ///     the given sequence number, and returns its length (`nlmsg_len`).
    public func append(subject: Int, maximumLength: Int, _ build: (UnsafeMutableRawPointer, UInt32) throws -> Int) rethrows {
        precondition(!finished, "NetlinkBatch.append after finish()")
        reserve(maximumLength)
        let sequence = nextSequence
        let written = try build(storage + length, sequence)
        precondition(written > 0 && written <= maximumLength, "netlink message overran its reserved space")
        records.append(Record(sequence: sequence, offset: length, length: written, subject: subject))
        length += Self.align(written)
        nextSequence &+= 1
    }

    /// Sets `NLM_F_ACK` on the last message, so the sender learns when the kernel has processed
    /// the whole batch without asking for one ack per message.
    public func requestAckOnLastMessage() {
        guard let last = records.last else { return }
        let flags = (storage + last.offset + 6).load(as: UInt16.self)
        (storage + last.offset + 6).storeBytes(of: flags | UInt16(NLM_F_ACK), as: UInt16.self)
    }

    /// Appends `NFNL_MSG_BATCH_END`; after this the batch can be sent.
    public func finish() {
        guard !finished else { return }
        endSequenceNumber = nextSequence
        appendControl(type: UInt16(NFNL_MSG_BATCH_END), sequence: nextSequence, generation: nil)
        nextSequence &+= 1
        finished = true
    }

    /// The next sequence number after the batch (for the socket's counter).
    public var sequenceAfter: UInt32 { nextSequence }

    /// Calls `body` with the whole batch's bytes.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage, count: length))
    }

    /// The record for `sequence`, if it is one of the batch's messages.
    public func record(forSequence sequence: UInt32) -> Record? {
        guard let first = records.first else { return nil }
        let index = Int(sequence &- first.sequence)
        guard index >= 0, index < records.count, records[index].sequence == sequence else { return nil }
        return records[index]
    }

    /// Calls `body` with the bytes of one recorded message (to locate an attribute the kernel
    /// pointed at in its extended ack).
    public func withMessage<R>(_ record: Record, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage + record.offset, count: record.length))
    }

    private func appendControl(type: UInt16, sequence: UInt32, generation: UInt32?) {
        reserve(64)
        let start = storage + length
        let header = start.assumingMemoryBound(to: nlmsghdr.self)
        header.pointee = nlmsghdr(nlmsg_len: 20, nlmsg_type: type, nlmsg_flags: UInt16(NLM_F_REQUEST), nlmsg_seq: sequence, nlmsg_pid: 0)
        let genmsg = (start + 16).assumingMemoryBound(to: nfgenmsg.self)
        genmsg.pointee = nfgenmsg(nfgen_family: UInt8(AF_UNSPEC), version: UInt8(NFNETLINK_V0), res_id: UInt16(NFNL_SUBSYS_NFTABLES).bigEndian)
        var total = 20
        if let generation {
            // struct nlattr { u16 len; u16 type } followed by the big-endian generation.
            (start + 20).storeBytes(of: UInt16(8), as: UInt16.self)
            (start + 22).storeBytes(of: UInt16(NFNL_BATCH_GENID.rawValue), as: UInt16.self)
            (start + 24).storeBytes(of: generation.bigEndian, as: UInt32.self)
            total = 28
        }
        header.pointee.nlmsg_len = UInt32(total)
        length += Self.align(total)
    }

    private func reserve(_ extra: Int) {
        guard length + extra > capacity else { return }
        var newCapacity = capacity
        while length + extra > newCapacity { newCapacity *= 2 }
        guard let memory = realloc(storage, newCapacity) else { fatalError("out of memory growing a netlink batch to \(newCapacity) bytes") }
        storage = memory
        capacity = newCapacity
    }

    static func align(_ value: Int) -> Int { (value + 3) & ~3 }
}
