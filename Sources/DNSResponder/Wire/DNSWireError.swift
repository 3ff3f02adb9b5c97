/// Why a DNS message could not be read or written. Each case names the byte offset and the
/// part of the message at fault, so a log line is enough to find the problem in a capture.
public enum DNSWireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The message ends before `field` (which starts at `offset`) is complete.
    case truncated(field: String, offset: Int)
    /// A label longer than 63 bytes at `offset`.
    case labelTooLong(offset: Int, length: Int)
    /// A name longer than 255 bytes in wire form starting at `offset`.
    case nameTooLong(offset: Int)
    /// A compression pointer at `offset` that points forward, to itself, or into a loop.
    case badPointer(offset: Int, target: Int)
    /// The reserved label types 0x40/0x80 at `offset`.
    case badLabelType(offset: Int)
    /// Bytes left over after the last record the header announced.
    case trailingBytes(offset: Int, count: Int)
    /// Record data whose length does not fit its type (`A` must be 4 bytes, …).
    case badRecordData(type: DNSRecordType, offset: Int)
    /// More than one OPT record, or an OPT record not owned by the root.
    case badOPT(offset: Int)
    /// A name given as text that cannot be a DNS name.
    case badNameText(String, reason: String)
    /// A message that would exceed 65535 bytes.
    case messageTooLarge

    public var description: String {
        switch self {
        case let .truncated(field, offset): "DNS message truncated in \(field) at byte \(offset)"
        case let .labelTooLong(offset, length): "DNS label of \(length) bytes at byte \(offset) (at most 63)"
        case let .nameTooLong(offset): "DNS name starting at byte \(offset) is longer than 255 bytes"
        case let .badPointer(offset, target): "DNS compression pointer at byte \(offset) to byte \(target) does not point strictly backwards"
        case let .badLabelType(offset): "reserved DNS label type at byte \(offset)"
        case let .trailingBytes(offset, count): "\(count) unexpected bytes after the last record, at byte \(offset)"
        case let .badRecordData(type, offset): "\(type) record data at byte \(offset) has the wrong length"
        case let .badOPT(offset): "invalid or duplicate OPT record at byte \(offset)"
        case let .badNameText(text, reason): "'\(text)' is not a DNS name: \(reason)"
        case .messageTooLarge: "DNS message would exceed 65535 bytes"
        }
    }
}
