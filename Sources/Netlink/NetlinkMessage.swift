import CMnl

/// A view of one received netlink message, valid only inside the callback it is passed to.
public struct NetlinkMessage {
    /// The whole message, header included.
    public let bytes: UnsafeRawBufferPointer

    public var type: UInt16 { bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self) }
    public var flags: UInt16 { bytes.loadUnaligned(fromByteOffset: 6, as: UInt16.self) }
    public var sequence: UInt32 { bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self) }

    /// The header as libnftnl's parsers expect it.
    public var header: UnsafePointer<nlmsghdr> {
        bytes.baseAddress!.assumingMemoryBound(to: nlmsghdr.self)
    }

    /// Calls `body` for each attribute in `bytes` (type with flags masked off, payload),
    /// without allocating; stops at the first malformed length.
    @inlinable
    public static func forEachAttribute(in bytes: UnsafeRawBufferPointer, _ body: (UInt16, UnsafeRawBufferPointer) throws -> Void) rethrows {
        var position = 0
        while position + 4 <= bytes.count {
            let length = Int(bytes.loadUnaligned(fromByteOffset: position, as: UInt16.self))
            guard length >= 4, position + length <= bytes.count else { return }
            let type = bytes.loadUnaligned(fromByteOffset: position + 2, as: UInt16.self) & 0x3fff
            try body(type, UnsafeRawBufferPointer(rebasing: bytes[position + 4 ..< position + length]))
            position += (length + 3) & ~3
        }
    }

    /// The top-level attributes of an nfnetlink message (after the 4-byte `nfgenmsg`).
    public var nfnetlinkAttributes: [(type: UInt16, payload: UnsafeRawBufferPointer, offset: Int)] {
        NetlinkMessage.attributes(in: bytes, from: 20)
    }

    /// Splits a datagram into messages, checking every length against the datagram.
    static func forEach(in datagram: UnsafeRawBufferPointer, _ body: (NetlinkMessage) throws -> Bool) rethrows {
        var offset = 0
        while offset + 16 <= datagram.count {
            let length = Int(datagram.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            guard length >= 16, offset + length <= datagram.count else { return }
            let message = NetlinkMessage(bytes: UnsafeRawBufferPointer(rebasing: datagram[offset ..< offset + length]))
            guard try body(message) else { return }
            offset += (length + 3) & ~3
        }
    }

    /// Netlink attributes (`struct nlattr`) in `bytes` from `offset`: (type, payload, offset).
    /// The type has the nested/byte-order flags masked off.
    public static func attributes(in bytes: UnsafeRawBufferPointer, from offset: Int) -> [(type: UInt16, payload: UnsafeRawBufferPointer, offset: Int)] {
        var result: [(UInt16, UnsafeRawBufferPointer, Int)] = []
        var position = offset
        while position + 4 <= bytes.count {
            let length = Int(bytes.loadUnaligned(fromByteOffset: position, as: UInt16.self))
            let type = bytes.loadUnaligned(fromByteOffset: position + 2, as: UInt16.self) & 0x3fff
            guard length >= 4, position + length <= bytes.count else { break }
            result.append((type, UnsafeRawBufferPointer(rebasing: bytes[position + 4 ..< position + length]), position))
            position += (length + 3) & ~3
        }
        return result
    }
}
