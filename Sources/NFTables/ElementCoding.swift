/// Converts set keys and map values between ``Value`` lists and the register-padded bytes the
/// kernel stores (each part of a concatenation occupies whole 32-bit words).
enum ElementCoding {
    static func bytes(_ values: ValueList) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(values.count * 8)
        let concatenated = values.count > 1
        for value in values {
            switch value {
            case .address(let address):
                result.append(contentsOf: address.bytes)
            case .proto(let number):
                result.append(number)
                if concatenated { result.append(contentsOf: [0, 0, 0]) }
            case .port(let port):
                result.append(UInt8(port >> 8))
                result.append(UInt8(port & 0xff))
                if concatenated { result.append(contentsOf: [0, 0]) }
            }
        }
        return result
    }

    /// Decodes `bytes` as `types`; nil when the length does not match.
    static func values(_ bytes: UnsafeRawBufferPointer, types: [DataType]) -> ValueList? {
        guard types.count <= ValueList.capacity else { return nil }
        var values: [Value] = []
        values.reserveCapacity(types.count)
        var offset = 0
        let concatenated = types.count > 1
        for type in types {
            let width = concatenated ? type.paddedSize : type.size
            guard offset + type.size <= bytes.count else { return nil }
            switch type {
            case .ipv4Address: values.append(.address(IPAddress(v4Bytes: bytes[offset ..< offset + 4])))
            case .ipv6Address: values.append(.address(IPAddress(v6Bytes: bytes[offset ..< offset + 16])))
            case .inetProto: values.append(.proto(bytes[offset]))
            case .inetService: values.append(.port(UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])))
            case .verdict: return nil
            }
            offset += width
        }
        return ValueList(values)
    }

    /// Splits a concatenated nft type id into its parts (6 bits each); nil for unknown ids.
    static func types(fromID id: UInt32) -> [DataType]? {
        var parts: [DataType] = []
        var rest = id
        while rest != 0 {
            let part: DataType
            switch rest & 0x3f {
            case 1: part = .verdict
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
