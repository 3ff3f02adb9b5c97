import CNftnl
import CMnl

/// Appends one libnftnl expression to a rule; the expression is owned by the rule afterwards.
private struct ExpressionSink {
    let rule: OpaquePointer

    func add(_ name: String, _ configure: (OpaquePointer) -> Void) {
        guard let expression = nftnl_expr_alloc(name) else { fatalError("libnftnl has no expression \(name)") }
        configure(expression)
        nftnl_rule_add_expr(rule, expression)
    }

    func payload(base: UInt32, offset: UInt32, length: UInt32, into register: UInt32) {
        add("payload") {
            nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_PAYLOAD_DREG), register)
            nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_PAYLOAD_BASE), base)
            nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_PAYLOAD_OFFSET), offset)
            nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_PAYLOAD_LEN), length)
        }
    }

    func meta(_ key: UInt32, into register: UInt32) {
        add("meta") {
            nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_META_KEY), key)
            nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_META_DREG), register)
        }
    }

    func compare(_ op: UInt32, register: UInt32, _ bytes: [UInt8]) {
        add("cmp") { expression in
            nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_CMP_SREG), register)
            nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_CMP_OP), op)
            bytes.withUnsafeBytes { _ = nftnl_expr_set(expression, attribute(NFTNL_EXPR_CMP_DATA), $0.baseAddress, UInt32($0.count)) }
        }
    }

    func immediate(_ bytes: [UInt8], into register: UInt32) {
        add("immediate") { expression in
            nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_IMM_DREG), register)
            bytes.withUnsafeBytes { _ = nftnl_expr_set(expression, attribute(NFTNL_EXPR_IMM_DATA), $0.baseAddress, UInt32($0.count)) }
        }
    }

    /// `register &= mask` (as nft encodes a mask: AND with the mask, XOR with zeros).
    func mask(register: UInt32, _ mask: [UInt8]) {
        add("bitwise") { expression in
            nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_BITWISE_SREG), register)
            nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_BITWISE_DREG), register)
            nftnl_expr_set_u32(expression, attribute(NFTNL_EXPR_BITWISE_LEN), UInt32(mask.count))
            mask.withUnsafeBytes { _ = nftnl_expr_set(expression, attribute(NFTNL_EXPR_BITWISE_MASK), $0.baseAddress, UInt32($0.count)) }
            [UInt8](repeating: 0, count: mask.count).withUnsafeBytes {
                _ = nftnl_expr_set(expression, attribute(NFTNL_EXPR_BITWISE_XOR), $0.baseAddress, UInt32($0.count))
            }
        }
    }

    /// An immediate verdict (`NF_ACCEPT`, `NF_DROP`) into the verdict register.
    func verdict(_ code: UInt32) {
        add("immediate") {
            nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_IMM_DREG), Register.verdict)
            nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_IMM_VERDICT), code)
        }
    }

    /// Loads `daddr . l4proto . th dport` into consecutive 32-bit registers from NFT_REG_1.
    func loadSlot(family: Family) {
        let v4 = family == .ip
        payload(base: number(NFT_PAYLOAD_NETWORK_HEADER), offset: v4 ? 16 : 24, length: v4 ? 4 : 16, into: Register.one)
        meta(number(NFT_META_L4PROTO), into: Register.r32(v4 ? 1 : 4))
        payload(base: number(NFT_PAYLOAD_TRANSPORT_HEADER), offset: 2, length: 2, into: Register.r32(v4 ? 2 : 5))
    }

    func lookup(set: String, destination: UInt32?) {
        add("lookup") {
            nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_LOOKUP_SREG), Register.one)
            nftnl_expr_set_str($0, attribute(NFTNL_EXPR_LOOKUP_SET), set)
            if let destination { nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_LOOKUP_DREG), destination) }
        }
    }

    func dnat(family: Family, addressRegister: UInt32, portRegister: UInt32) {
        add("nat") {
            nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_NAT_TYPE), number(NFT_NAT_DNAT))
            nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_NAT_FAMILY), UInt32(family.protocolFamily))
            nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_NAT_REG_ADDR_MIN), addressRegister)
            nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_NAT_REG_ADDR_MAX), addressRegister)
            nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_NAT_REG_PROTO_MIN), portRegister)
            nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_NAT_REG_PROTO_MAX), portRegister)
            // NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED
            nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_NAT_FLAGS), 0x3)
        }
    }
}

extension Expression {
    /// Adds this expression's libnftnl expressions to `rule` (a table of `family`).
    func encode(into rule: OpaquePointer, family: Family) {
        let sink = ExpressionSink(rule: rule)
        let v4 = family == .ip
        switch self {
        case .l4proto(let proto):
            sink.meta(number(NFT_META_L4PROTO), into: Register.one)
            sink.compare(number(NFT_CMP_EQ), register: Register.one, [proto])
        case .address(let direction, let address):
            let offset: UInt32 = v4 ? (direction == .source ? 12 : 16) : (direction == .source ? 8 : 24)
            sink.payload(base: number(NFT_PAYLOAD_NETWORK_HEADER), offset: offset, length: UInt32(address.byteCount), into: Register.one)
            sink.compare(number(NFT_CMP_EQ), register: Register.one, address.bytes)
        case .port(let direction, let port):
            sink.payload(base: number(NFT_PAYLOAD_TRANSPORT_HEADER), offset: direction == .source ? 0 : 2, length: 2, into: Register.one)
            sink.compare(number(NFT_CMP_EQ), register: Register.one, [UInt8(port >> 8), UInt8(port & 0xff)])
        case .sourcePrefix(let prefix):
            // As nft encodes `ip saddr 10.0.0.0/8`: load, mask (unless the whole address
            // counts), compare with the network.
            let length = prefix.network.byteCount
            sink.payload(base: number(NFT_PAYLOAD_NETWORK_HEADER), offset: v4 ? 12 : 8, length: UInt32(length), into: Register.one)
            if prefix.length < length * 8 { sink.mask(register: Register.one, prefix.maskBytes) }
            sink.compare(number(NFT_CMP_EQ), register: Register.one, prefix.network.bytes)
        case .addressLowBits(let mask, let value):
            // As nft encodes `ip daddr & 0.0.0.15 == 0.0.0.3`: load, mask, compare.
            let length = v4 ? 4 : 16
            var maskBytes = [UInt8](repeating: 0, count: length)
            maskBytes[length - 1] = mask
            var valueBytes = [UInt8](repeating: 0, count: length)
            valueBytes[length - 1] = value
            sink.payload(base: number(NFT_PAYLOAD_NETWORK_HEADER), offset: v4 ? 16 : 24, length: UInt32(length), into: Register.one)
            sink.mask(register: Register.one, maskBytes)
            sink.compare(number(NFT_CMP_EQ), register: Register.one, valueBytes)
        case .ctStatusDNAT:
            sink.add("ct") {
                nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_CT_KEY), number(NFT_CT_STATUS))
                nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_CT_DREG), Register.one)
            }
            let mask = withUnsafeBytes(of: UInt32(0x20)) { Array($0) } // IPS_DST_NAT, host order
            sink.mask(register: Register.one, mask)
            sink.compare(number(NFT_CMP_NEQ), register: Register.one, [0, 0, 0, 0])
        case .slotLookup(let set):
            sink.loadSlot(family: family)
            sink.lookup(set: set, destination: nil)
        case .slotDNATMap(let set):
            sink.loadSlot(family: family)
            sink.lookup(set: set, destination: Register.one)
            sink.dnat(family: family, addressRegister: Register.one, portRegister: Register.r32(v4 ? 1 : 4))
        case .slotVerdictMap(let set):
            sink.loadSlot(family: family)
            sink.lookup(set: set, destination: Register.verdict)
        case .slotBalanceMap(let set, let modulus):
            sink.loadSlot(family: family)
            sink.add("numgen") {
                nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_NG_DREG), Register.r32(v4 ? 3 : 6))
                nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_NG_MODULUS), modulus)
                nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_NG_TYPE), number(NFT_NG_RANDOM))
                nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_NG_OFFSET), 0)
            }
            sink.lookup(set: set, destination: Register.one)
            sink.dnat(family: family, addressRegister: Register.one, portRegister: Register.r32(v4 ? 1 : 4))
        case .numgen(let modulus, let equals):
            sink.add("numgen") {
                nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_NG_DREG), Register.one)
                nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_NG_MODULUS), modulus)
                nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_NG_TYPE), number(NFT_NG_RANDOM))
                nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_NG_OFFSET), 0)
            }
            sink.compare(number(NFT_CMP_EQ), register: Register.one, withUnsafeBytes(of: equals) { Array($0) })
        case .dnat(let address, let port):
            sink.immediate(address.bytes, into: Register.one)
            sink.immediate([UInt8(port >> 8), UInt8(port & 0xff)], into: Register.two)
            sink.dnat(family: family, addressRegister: Register.one, portRegister: Register.two)
        case .rejectWithTCPReset:
            sink.add("reject") {
                nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_REJECT_TYPE), number(NFT_REJECT_TCP_RST))
                nftnl_expr_set_u8($0, attribute(NFTNL_EXPR_REJECT_CODE), 0)
            }
        case .rejectPortUnreachable:
            sink.add("reject") {
                nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_REJECT_TYPE), number(NFT_REJECT_ICMP_UNREACH))
                // ICMP_PORT_UNREACH (3) / ICMPV6_PORT_UNREACH (4)
                nftnl_expr_set_u8($0, attribute(NFTNL_EXPR_REJECT_CODE), v4 ? 3 : 4)
            }
        case .masquerade:
            sink.add("masq") {
                nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_MASQ_FLAGS), 0x10) // NF_NAT_RANGE_PROTO_RANDOM_FULLY
            }
        case .socketPresent:
            // As nft encodes `socket transparent 0`: the lookup fails the rule when there is
            // no socket; otherwise the socket's IP_TRANSPARENT flag (one byte) is compared.
            sink.add("socket") {
                nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_SOCKET_KEY), number(NFT_SOCKET_TRANSPARENT))
                nftnl_expr_set_u32($0, attribute(NFTNL_EXPR_SOCKET_DREG), Register.one)
            }
            sink.compare(number(NFT_CMP_EQ), register: Register.one, [0])
        case .notrack:
            sink.add("notrack") { _ in }
        case .counter:
            sink.add("counter") { _ in }
        case .accept:
            sink.verdict(1) // NF_ACCEPT
        case .drop:
            sink.verdict(0) // NF_DROP
        }
    }
}
