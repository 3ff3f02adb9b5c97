/// One name's precomputed answers, independent of where they are stored: what the
/// encoder produces for a name before its record is written into a run of records.
struct DNSEncodedName: Sendable {
    struct AnswerSet: Sendable {
        var type: UInt16
        var count: UInt16
        var bytes: [UInt8]
    }

    /// The lower-cased wire name.
    var key: [UInt8]
    var hash: UInt64
    var labelCount: Int
    /// Index into the table's zones, or -1.
    var zone: Int
    var answers: [AnswerSet]
    /// For the head of a part (``DNSRecordTableBuilder/add(_:head:)``), the part's other
    /// names, so the part can be removed later knowing only its head: per name one byte,
    /// 1 when the name is below the head (its labels down to the head's follow, then a
    /// zero byte) or 0 (its whole wire form follows). Empty for other names.
    var companions: [UInt8] = []

    /// Adds `other`'s answer sets to this name's: records of a type both have are joined
    /// into one set (this name's first), other types are appended. Used when two parts of
    /// the content give records to the same name.
    ///
    /// - Throws: ``DNSWireError/messageTooLarge`` when a set or the name outgrows its limits.
    mutating func merge(_ other: DNSEncodedName) throws {
        for set in other.answers {
            if let index = answers.firstIndex(where: { $0.type == set.type }) {
                guard Int(answers[index].count) + Int(set.count) <= 65535,
                      answers[index].bytes.count + set.bytes.count <= 65535 else { throw DNSWireError.messageTooLarge }
                answers[index].count += set.count
                answers[index].bytes += set.bytes
            } else {
                guard answers.count < 255 else { throw DNSWireError.messageTooLarge }
                answers.append(set)
            }
        }
        guard companions.count + other.companions.count <= 65535 else { throw DNSWireError.messageTooLarge }
        companions += other.companions
    }
}

/// Writing and reading the record layout described on ``DNSRecordShard``, in a run of
/// records (a byte array, or a shard's memory). Every read checks nothing: runs are only
/// ever written by ``append(_:to:)``.
extension DNSRecordShard {
    /// Bytes from a record's start to its key.
    @inline(__always)
    static func keyOffset(_ header: RecordHeader) -> Int {
        MemoryLayout<RecordHeader>.stride + Int(header.answerSetCount) * MemoryLayout<AnswerSetDescriptor>.stride
    }

    /// The size (padding included) of the record at `offset` in `run`.
    static func recordSize(in run: UnsafeRawBufferPointer, at offset: Int) -> Int {
        let header = run.loadUnaligned(fromByteOffset: offset, as: RecordHeader.self)
        var size = keyOffset(header) + Int(header.keyLength)
        for index in 0..<Int(header.answerSetCount) {
            let at = offset + MemoryLayout<RecordHeader>.stride + index * MemoryLayout<AnswerSetDescriptor>.stride
            size += Int(run.loadUnaligned(fromByteOffset: at, as: AnswerSetDescriptor.self).length)
        }
        return (size + Int(header.companionLength) + 7) & ~7
    }

    static func recordSize(_ name: DNSEncodedName) -> Int {
        let size = MemoryLayout<RecordHeader>.stride + name.answers.count * MemoryLayout<AnswerSetDescriptor>.stride + name.key.count
            + name.answers.reduce(0) { $0 + $1.bytes.count } + name.companions.count
        return (size + 7) & ~7
    }

    /// Appends `name`'s record to `run`; returns where it starts.
    @discardableResult
    static func append(_ name: DNSEncodedName, to run: inout [UInt8]) -> Int {
        let start = run.count
        let size = recordSize(name)
        run.append(contentsOf: repeatElement(0, count: size))
        run.withUnsafeMutableBytes { bytes in
            let header = RecordHeader(hash: name.hash, keyLength: UInt8(truncatingIfNeeded: name.key.count),
                                      answerSetCount: UInt8(truncatingIfNeeded: name.answers.count),
                                      zone: Int16(truncatingIfNeeded: name.zone), labelCount: UInt8(truncatingIfNeeded: name.labelCount),
                                      companionLength: UInt16(truncatingIfNeeded: name.companions.count))
            bytes.storeBytes(of: header, toByteOffset: start, as: RecordHeader.self)
            var position = start + MemoryLayout<RecordHeader>.stride
            for set in name.answers {
                bytes.storeBytes(of: AnswerSetDescriptor(type: set.type, count: set.count, length: UInt32(truncatingIfNeeded: set.bytes.count)),
                                 toByteOffset: position, as: AnswerSetDescriptor.self)
                position += MemoryLayout<AnswerSetDescriptor>.stride
            }
            for part in [name.key] + name.answers.map(\.bytes) + [name.companions] {
                UnsafeMutableRawBufferPointer(rebasing: bytes[position..<position + part.count]).copyBytes(from: part)
                position += part.count
            }
        }
        return start
    }

    /// The record at `offset` in `run`, decoded (to merge more answers into it).
    static func decode(in run: UnsafeRawBufferPointer, at offset: Int) -> DNSEncodedName {
        let header = run.loadUnaligned(fromByteOffset: offset, as: RecordHeader.self)
        var descriptors: [AnswerSetDescriptor] = []
        for index in 0..<Int(header.answerSetCount) {
            let at = offset + MemoryLayout<RecordHeader>.stride + index * MemoryLayout<AnswerSetDescriptor>.stride
            descriptors.append(run.loadUnaligned(fromByteOffset: at, as: AnswerSetDescriptor.self))
        }
        var position = offset + keyOffset(header)
        let key = Array(run[position..<position + Int(header.keyLength)])
        position += key.count
        var answers: [DNSEncodedName.AnswerSet] = []
        for set in descriptors {
            answers.append(DNSEncodedName.AnswerSet(type: set.type, count: set.count, bytes: Array(run[position..<position + Int(set.length)])))
            position += Int(set.length)
        }
        let companions = Array(run[position..<position + Int(header.companionLength)])
        return DNSEncodedName(key: key, hash: header.hash, labelCount: Int(header.labelCount), zone: Int(header.zone), answers: answers,
                              companions: companions)
    }
}

extension DNSEncodedName {
    /// The companion list for a head `key` and the part's other names (lower-cased wire).
    static func companions(head key: [UInt8], names: [[UInt8]]) -> [UInt8] {
        var bytes: [UInt8] = []
        for name in names where name != key {
            if name.count > key.count, name.suffix(key.count).elementsEqual(key), isLabelBoundary(name.count - key.count, in: name) {
                bytes.append(1)
                bytes += name.prefix(name.count - key.count)
                bytes.append(0)
            } else {
                bytes.append(0)
                bytes += name
            }
        }
        return bytes
    }

    /// The names a companion list holds, given its head's wire name.
    static func names(inCompanions bytes: UnsafeRawBufferPointer, head key: [UInt8]) -> [DNSName] {
        var names: [DNSName] = []
        var offset = 0
        while offset < bytes.count {
            let below = bytes[offset] == 1
            offset += 1
            var wire: [UInt8] = []
            while offset < bytes.count, bytes[offset] != 0 {
                let length = Int(bytes[offset])
                wire += bytes[offset..<min(offset + 1 + length, bytes.count)]
                offset += 1 + length
            }
            offset += 1
            if below { wire += key } else { wire.append(0) }
            names.append(DNSName(uncheckedWire: wire))
        }
        return names
    }

    private static func isLabelBoundary(_ position: Int, in wire: [UInt8]) -> Bool {
        var offset = 0
        while offset < position { offset += Int(wire[offset]) + 1 }
        return offset == position
    }
}
