#if canImport(Glibc)
import Glibc
#endif
import Netlink
import Synchronization

/// The kernel's nf_tables, reached through one netfilter netlink socket.
///
/// Opened in the network namespace of the calling thread. Every commit is one batch bound to
/// a ruleset generation when one is given.
public final class KernelRulesetBackend: RulesetBackend {
    private let socket: NetfilterSocket

    /// - Throws: ``NFTablesError/unavailable(_:)`` without permission or nf_tables support.
    public init() throws {
        do {
            socket = try NetfilterSocket()
            _ = try socket.rulesetGeneration()
        } catch let error as NetlinkError {
            throw NFTablesError.from(error)
        }
    }

    /// Closes the netlink socket.
    public func close() { socket.close() }

    public var commitPort: UInt32? { socket.portID }

    public func read(_ tables: [TableID], counters: Bool) throws -> KernelSnapshot {
        do {
            return try RulesetReader(socket: socket, counters: counters).read(tables)
        } catch let error as NetlinkError {
            throw NFTablesError.from(error)
        }
    }

    /// The current ruleset generation.
    public func generation() throws -> UInt32 {
        do { return try socket.rulesetGeneration() } catch let error as NetlinkError { throw NFTablesError.from(error) }
    }

    public func commit(_ transaction: Transaction, generation: UInt32?, marker: ReconcileMarker?) throws -> UInt32 {
        if transaction.isEmpty { return try generation ?? self.generation() }
        var transaction = transaction
        for operation in marker?.operations ?? [] { transaction.add(operation) }
        // Sized for the whole batch up front (an element takes well under 160 bytes): growing
        // a 16 MB buffer by doubling copies it and leaves both copies resident at the peak,
        // while pages of an oversized allocation that are never written cost nothing.
        let elements = transaction.operations.reduce(0) { count, operation in
            switch operation {
            case .addElements(_, _, let items), .deleteElements(_, _, let items): count + items.count
            default: count + 1
            }
        }
        let batch = NetlinkBatch(firstSequence: socket.reserveSequences(0), generation: generation,
                                 initialCapacity: elements * 160 + (1 << 16))
        var encoder = BatchEncoder()
        encoder.encode(transaction, into: batch)
        batch.finish()
        _ = socket.reserveSequences(Int(batch.sequenceAfter &- batch.beginSequenceNumber))
        do {
            try socket.send(batch)
        } catch let rejected as BatchRejected {
            if rejected.isGenerationMismatch { throw GenerationChanged() }
            throw NFTablesError.rejected(rejected.failures.map { describe($0, transaction: transaction, batch: batch, encoder: encoder) })
        } catch let error as NetlinkError {
            throw NFTablesError.from(error)
        }
        if let generation { return ReconcileMarker.generation(after: generation) }
        return try self.generation()
    }

    public func readMarker(_ table: TableID) throws -> (generation: UInt32, marker: ReconcileMarker?) {
        do {
            return try RulesetReader(socket: socket, counters: false).readMarker(table)
        } catch let error as NetlinkError {
            throw NFTablesError.from(error)
        }
    }

    public func readCounters(_ elements: [ElementAddress]) throws -> [ElementAddress: Counter] {
        let reader = RulesetReader(socket: socket, counters: true)
        var counters: [ElementAddress: Counter] = [:]
        do {
            for element in elements {
                if let counter = try reader.readCounter(element) { counters[element] = counter }
            }
        } catch let error as NetlinkError {
            throw NFTablesError.from(error)
        }
        return counters
    }

    /// Packets and bytes per service (per element comment), summed over the counted sets of
    /// `tables`, folded as the kernel's dump arrives (nothing per element is kept). Absent
    /// tables count nothing.
    public func serviceCounters(_ tables: [TableID]) throws -> [String: Counter] {
        do {
            return try RulesetReader(socket: socket, counters: true).countersByComment(tables)
        } catch let error as NetlinkError {
            throw NFTablesError.from(error)
        }
    }

    /// Names the object behind a failed message: for element messages, the element the kernel
    /// pointed at (its comment names the service), else the chain/set/table.
    private func describe(_ failure: BatchFailure, transaction: Transaction, batch: NetlinkBatch, encoder: BatchEncoder) -> RejectedChange {
        guard let record = failure.record, record.subject < encoder.subjects.count else {
            return RejectedChange(change: "batch", subject: "the whole batch", errno: failure.errno, kernelMessage: failure.kernelMessage)
        }
        let subject = encoder.subjects[record.subject]
        let operation = transaction.operations[subject.operation]
        var name: String
        var change: String
        switch operation {
        case .addElements(let table, let set, let elements), .deleteElements(let table, let set, let elements):
            let range = subject.elements ?? 0 ..< elements.count
            var index = range.lowerBound
            if let offset = failure.attributeOffset,
               let position = batch.withMessage(record, { ElementLocator.elementIndex(in: $0, offset: offset) }) {
                index = range.lowerBound + position
            }
            let element = elements.element(atOffset: min(index, elements.count - 1))
            name = element?.comment.map { "service \($0)" } ?? "set \(set)"
            let verb = if case .addElements = operation { "add" } else { "delete" }
            change = "\(verb) element \(table) \(set) { \(element.map(\.description) ?? "") }"
        case .addRule(_, let chain, _), .flushChain(_, let chain), .deleteChain(_, let chain):
            name = "chain \(chain)"
            change = operation.command
        case .addChain(_, let chain):
            name = "chain \(chain.name)"
            change = operation.command
        case .addSet(_, let set):
            name = "set \(set.name)"
            change = operation.command
        case .deleteSet(_, let set), .flushSet(_, let set):
            name = "set \(set)"
            change = operation.command
        case .addTable(let table), .deleteTable(let table):
            name = "table \(table)"
            change = operation.command
        }
        if change.count > 300 { change = String(change.prefix(300)) + " …" }
        return RejectedChange(change: change, subject: name, errno: failure.errno, kernelMessage: failure.kernelMessage)
    }
}

/// Finds which element of an element-list message an extended-ack offset points into.
enum ElementLocator {
    /// `NFTA_SET_ELEM_LIST_ELEMENTS` (3) holds one nest per element; returns the index of the
    /// nest containing `offset` (bytes from the start of the message).
    static func elementIndex(in message: UnsafeRawBufferPointer, offset: Int) -> Int? {
        var position = 20 // nlmsghdr + nfgenmsg
        while position + 4 <= message.count {
            let length = Int(message.loadUnaligned(fromByteOffset: position, as: UInt16.self))
            let type = message.loadUnaligned(fromByteOffset: position + 2, as: UInt16.self) & 0x3fff
            guard length >= 4, position + length <= message.count else { return nil }
            if type == 3, offset >= position, offset < position + length {
                var inner = position + 4
                var index = 0
                while inner + 4 <= position + length {
                    let innerLength = Int(message.loadUnaligned(fromByteOffset: inner, as: UInt16.self))
                    guard innerLength >= 4 else { return nil }
                    if offset >= inner, offset < inner + innerLength { return index }
                    inner += (innerLength + 3) & ~3
                    index += 1
                }
                return nil
            }
            position += (length + 3) & ~3
        }
        return nil
    }
}
