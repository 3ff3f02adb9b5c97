#if canImport(Glibc)
import Glibc
#endif
import CMnl

/// One message of a batch the kernel refused, with everything it said about it.
public struct BatchFailure: Sendable, CustomStringConvertible {
    /// The failing message's sequence number.
    public var sequence: UInt32
    /// The (positive) errno.
    public var errno: Int32
    /// The kernel's extended-ack text, when it gave one.
    public var kernelMessage: String?
    /// The offset of the offending attribute inside the failing message, when the kernel
    /// pointed at one (extended ack `NLMSGERR_ATTR_OFFS`).
    public var attributeOffset: Int?
    /// Where the message sits in the batch; nil for the begin message and unknown sequences.
    public var record: NetlinkBatch.Record?
    /// True when this failure is the kernel refusing the batch's begin message.
    public var isBatchBegin: Bool

    public var description: String {
        var text = "\(NetlinkError.name(of: errno)) (\(String(cString: strerror(errno))))"
        if let kernelMessage, !kernelMessage.isEmpty { text += ": \(kernelMessage)" }
        return text
    }
}

/// The kernel refused a batch; nothing in it was applied.
public struct BatchRejected: Error, Sendable, CustomStringConvertible {
    public var failures: [BatchFailure]

    /// The ruleset changed since the generation the batch was bound to: re-read and retry.
    public var isGenerationMismatch: Bool {
        failures.contains { $0.isBatchBegin && $0.errno == ERESTART_ }
    }

    public var description: String {
        "the kernel rejected the batch (nothing was applied): " + failures.map(\.description).joined(separator: "; ")
    }
}

/// The acknowledgements the kernel sent for one batch.
struct AckCollector {
    var failures: [BatchFailure] = []
    var acknowledged: Set<UInt32> = []

    /// Reads an `NLMSG_ERROR` message: an ack when its error is 0, a failure otherwise.
    mutating func take(_ message: NetlinkMessage, batch: NetlinkBatch) {
        let bytes = message.bytes
        guard bytes.count >= 16 + 4 + 16 else { return }
        let error = bytes.loadUnaligned(fromByteOffset: 16, as: Int32.self)
        let original = bytes.loadUnaligned(fromByteOffset: 20 + 8, as: UInt32.self)
        if error == 0 {
            acknowledged.insert(original)
            return
        }
        var failure = BatchFailure(sequence: original, errno: -error, record: batch.record(forSequence: original),
                                   isBatchBegin: original == batch.beginSequenceNumber)
        let flags = message.flags
        if flags & 0x200 != 0 { // NLM_F_ACK_TLVS
            let originalLength = Int(bytes.loadUnaligned(fromByteOffset: 20, as: UInt32.self))
            let capped = flags & 0x100 != 0 // NLM_F_CAPPED
            let start = 20 + (capped ? 16 : ((originalLength + 3) & ~3))
            if start <= bytes.count {
                for attribute in NetlinkMessage.attributes(in: bytes, from: start) {
                    switch attribute.type {
                    case 1: // NLMSGERR_ATTR_MSG
                        failure.kernelMessage = String(decoding: attribute.payload.prefix { $0 != 0 }, as: UTF8.self)
                    case 2 where attribute.payload.count >= 4: // NLMSGERR_ATTR_OFFS
                        failure.attributeOffset = Int(attribute.payload.loadUnaligned(as: UInt32.self))
                    default:
                        break
                    }
                }
            }
        }
        failures.append(failure)
    }
}

extension NetfilterSocket {
    /// Sends a finished batch and collects every ack and error the kernel returns for it.
    ///
    /// The kernel processes the whole batch inside `sendmsg`, so by the time it returns every
    /// reply is queued; they are read until the queue is empty (and, if the last message asked
    /// for an ack, until that ack is seen).
    ///
    /// - Throws: ``BatchRejected`` when any message failed (the kernel applied nothing), or
    ///   ``NetlinkError`` when the socket itself failed.
    public func send(_ batch: NetlinkBatch) throws {
        batch.finish()
        guard batch.count > 0 else { return }
        drain()
        try batch.withBytes { try sendRaw($0, context: "sending a batch of \(batch.count) messages") }
        var collector = AckCollector()
        let lastSequence = batch.records.last?.sequence
        let lastWantsAck = batch.records.last.map { record in
            batch.withMessage(record) { $0.loadUnaligned(fromByteOffset: 6, as: UInt16.self) & UInt16(NLM_F_ACK) != 0 }
        } ?? false
        var wait = false
        while true {
            guard let datagram = try receiveRaw(wait: wait, context: "reading the batch's acknowledgements") else {
                if !collector.failures.isEmpty || !lastWantsAck { break }
                if let lastSequence, collector.acknowledged.contains(lastSequence) { break }
                wait = true
                continue
            }
            NetlinkMessage.forEach(in: datagram) { message in
                if message.type == UInt16(NLMSG_ERROR) { collector.take(message, batch: batch) }
                return true
            }
            wait = false
        }
        if !collector.failures.isEmpty { throw BatchRejected(failures: collector.failures) }
    }
}
