import CNftnl

// Small conversions so libnftnl's C enums (imported either as structs or as Int constants)
// can be passed where it wants `uint16_t` attribute numbers.

@inline(__always) func attribute<T: RawRepresentable>(_ value: T) -> UInt16 where T.RawValue: BinaryInteger {
    UInt16(truncatingIfNeeded: value.rawValue)
}

@inline(__always) func attribute(_ value: Int) -> UInt16 { UInt16(truncatingIfNeeded: value) }

@inline(__always) func number<T: RawRepresentable>(_ value: T) -> UInt32 where T.RawValue: BinaryInteger {
    UInt32(truncatingIfNeeded: value.rawValue)
}

@inline(__always) func number(_ value: Int) -> UInt32 { UInt32(truncatingIfNeeded: value) }

/// The netlink message type for an nf_tables command.
@inline(__always) func messageType<T: RawRepresentable>(_ command: T) -> UInt16 where T.RawValue: BinaryInteger {
    UInt16(truncatingIfNeeded: command.rawValue)
}

/// Builds the userdata TLV nft uses for comments (type 0 = comment, NUL-terminated string).
func commentUserData(_ comment: String) -> [UInt8] {
    var bytes = Array(comment.utf8.prefix(250))
    bytes.append(0)
    return [0, UInt8(bytes.count)] + bytes
}

/// Reads the comment out of a userdata TLV blob, if it has one.
func comment(fromUserData data: UnsafeRawBufferPointer) -> String? {
    var offset = 0
    while offset + 2 <= data.count {
        let type = data[offset], length = Int(data[offset + 1])
        guard offset + 2 + length <= data.count else { return nil }
        if type == 0 {
            let value = data[(offset + 2) ..< (offset + 2 + length)].prefix { $0 != 0 }
            return String(decoding: value, as: UTF8.self)
        }
        offset += 2 + length
    }
    return nil
}

/// Register numbers as nft allocates them: `NFT_REG_1`/`NFT_REG_2` (16-byte registers) and
/// the 32-bit registers of a concatenation.
enum Register {
    static let verdict: UInt32 = 0
    static let one: UInt32 = 1
    static let two: UInt32 = 2
    /// The 32-bit register `index` (NFT_REG32_00 + index).
    static func r32(_ index: Int) -> UInt32 { UInt32(8 + index) }
}
