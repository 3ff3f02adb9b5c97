/// Converts set keys and map values between ``Value`` lists and the register-padded bytes the
/// kernel stores (each part of a concatenation occupies whole 32-bit words).
enum ElementCoding {
    /// Writes `values` as the kernel stores them at `pointer` — addresses as their bytes; in a
    /// concatenation the protocol and port padded to 32 bits; numbers as native 32-bit words —
    /// and returns the byte count. Needs room for 72 bytes: an IPv4 address is written as 8
    /// bytes, the extra 4 overwritten by the next part.
    static func write(_ values: ValueList, to pointer: UnsafeMutableRawPointer) -> Int {
        let concatenated = values.count > 1
        var offset = 0
        for value in values {
            switch value {
            case .address(let address):
                address.write(to: pointer + offset)
                offset += address.byteCount
            case .proto(let number):
                pointer.storeBytes(of: UInt32(0), toByteOffset: offset, as: UInt32.self)
                pointer.storeBytes(of: number, toByteOffset: offset, as: UInt8.self)
                offset += concatenated ? 4 : 1
            case .port(let port):
                pointer.storeBytes(of: UInt32(0), toByteOffset: offset, as: UInt32.self)
                pointer.storeBytes(of: port.bigEndian, toByteOffset: offset, as: UInt16.self)
                offset += concatenated ? 4 : 2
            case .number(let number):
                pointer.storeBytes(of: number, toByteOffset: offset, as: UInt32.self)
                offset += 4
            }
        }
        return offset
    }

    /// Decodes `bytes` as `types`; nil when the length does not match.
    static func values(_ bytes: UnsafeRawBufferPointer, types: [DataType]) -> ValueList? {
        // A list holds at most one address (see ``ValueList``); nothing the agent writes has more.
        guard types.count <= ValueList.capacity,
              types.filter({ $0 == .ipv4Address || $0 == .ipv6Address }).count <= 1 else { return nil }
        let filler = Value.proto(0)
        var parts = (filler, filler, filler, filler)
        var offset = 0
        let concatenated = types.count > 1
        for (index, type) in types.enumerated() {
            let width = concatenated ? type.paddedSize : type.size
            guard offset + type.size <= bytes.count else { return nil }
            let value: Value
            switch type {
            case .ipv4Address: value = .address(IPAddress(v4Bytes: bytes[offset ..< offset + 4]))
            case .ipv6Address: value = .address(IPAddress(v6Bytes: bytes[offset ..< offset + 16]))
            case .inetProto: value = .proto(bytes[offset])
            case .inetService: value = .port(UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1]))
            case .integer: value = .number(bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            case .verdict: return nil
            }
            switch index {
            case 0: parts.0 = value
            case 1: parts.1 = value
            case 2: parts.2 = value
            default: parts.3 = value
            }
            offset += width
        }
        return ValueList(count: types.count, parts.0, parts.1, parts.2, parts.3)
    }

    /// Splits a concatenated nft type id into its parts (6 bits each); nil for unknown ids.
    static func types(fromID id: UInt32) -> [DataType]? {
        var parts: [DataType] = []
        var rest = id
        while rest != 0 {
            let part: DataType
            switch rest & 0x3f {
            case 1: part = .verdict
            case 4: part = .integer
            case 7: part = .ipv4Address
            case 8: part = .ipv6Address
            case 12: part = .inetProto
            case 13: part = .inetService
            default: return nil
            }
            parts.insert(part, at: 0)
            rest >>= 6
        }
        return parts.isEmpty ? nil : parts
    }
}
