import Testing
@testable import NFTables

/// ``ElementSet`` against a plain dictionary: the same answers after the same mixed inserts,
/// replacements and removals (dense packed storage, swap-removal, the index's backward
/// shift), for every key shape the agent's sets use, IPv6 included.
struct ElementSetTests {
    /// A small deterministic generator (no seed from the system: failures replay).
    struct SplitMix {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return Int((z ^ (z >> 31)) % UInt64(bound))
        }
    }

    static func address(_ n: Int, v6: Bool) -> IPAddress {
        v6 ? IPAddress("fd00::\(String(n >> 16, radix: 16)):\(String(n & 0xffff, radix: 16))")!
           : IPAddress("10.\(n >> 16 & 255).\(n >> 8 & 255).\(n & 255)")!
    }

    /// An element of one of the agent's shapes, numbered `n` (few distinct keys, so that
    /// replacements and removals of present keys are frequent).
    static func element(_ n: Int, shape: Int, v6: Bool) -> Element {
        let vip = address(n % 4096, v6: v6)
        let proto: UInt8 = n % 2 == 0 ? 6 : 17
        let port = UInt16(80 + n % 7)
        let target: ElementData = .values([.address(address(n * 7 + 1, v6: v6)), .port(UInt16(4143 + n % 3))])
        switch shape {
        case 0: return Element(key: [.address(vip), .proto(proto), .port(port)], data: target, comment: "namespace-\(n % 97)/service-\(n)-cluster")
        case 1: return Element(key: [.address(vip), .proto(proto), .port(port)], data: .verdict(.goto("balance-\(2 + n % 5)")), comment: "namespace-\(n % 97)/service-\(n)-cluster")
        case 2: return Element(key: [.address(vip), .proto(proto), .port(port), .number(UInt32(n % 5))], data: target)
        default: return Element(key: [.address(vip), .proto(proto), .port(port)], comment: n % 3 == 0 ? nil : "x")
        }
    }

    @Test(arguments: [0, 1, 2, 3], [false, true])
    func behavesLikeADictionary(shape: Int, v6: Bool) {
        var random = SplitMix(state: UInt64(shape * 2 + (v6 ? 1 : 0)))
        var set = ElementSet()
        var reference: [ValueList: Element] = [:]
        for step in 0 ..< 20_000 {
            let element = Self.element(random.next(6000), shape: shape, v6: v6)
            switch random.next(10) {
            case 0 ..< 6:
                set[element.key] = element
                reference[element.key] = element
            case 6 ..< 9:
                #expect(set.removeValue(forKey: element.key) == reference.removeValue(forKey: element.key))
            default:
                #expect(set[element.key] == reference[element.key])
                #expect(set.contains(element.key) == (reference[element.key] != nil))
            }
            if step % 5000 == 0 { set.trim() }
            #expect(set.count == reference.count)
        }
        #expect(set == ElementSet(reference))
        #expect(Set(set.keys) == Set(reference.keys))
        for (key, element) in set.entries { #expect(reference[key] == element) }
        for element in reference.values { #expect(set[element.key] == element) }
    }

    @Test func elementsOfAnotherShapeAreKeptAside() {
        var set = ElementSet()
        let dnat = Self.element(1, shape: 0, v6: false)
        let verdict = Self.element(2, shape: 1, v6: false) // same key shape, other value shape
        let slot = Self.element(3, shape: 2, v6: false)    // other key shape
        set[dnat.key] = dnat
        set[verdict.key] = verdict
        set[slot.key] = slot
        #expect(set.count == 3)
        #expect(set[dnat.key] == dnat && set[verdict.key] == verdict && set[slot.key] == slot)
        // The same key with a value of the set's shape again moves back into the dense part.
        let back = Element(key: verdict.key, data: dnat.data, comment: "back")
        set[verdict.key] = back
        #expect(set.count == 3 && set[verdict.key] == back)
        #expect(set.removeValue(forKey: slot.key) == slot)
        #expect(set.count == 2 && !set.contains(slot.key))
        // Empty lists pack into no words: kept aside as well.
        var empty = ElementSet()
        let odd = Element(key: [], data: .values([]))
        empty[odd.key] = odd
        empty[dnat.key] = dnat
        #expect(empty.count == 2 && empty[odd.key] == odd && empty[dnat.key] == dnat)
    }

    @Test func packedListsRoundTrip() {
        let lists: [ValueList] = [
            [.address(IPAddress("10.1.2.3")!), .proto(6), .port(80)],
            [.address(IPAddress("255.255.255.255")!), .proto(255), .port(65535), .number(.max)],
            [.address(IPAddress("fd00::1:2")!), .proto(17), .port(53)],
            [.address(IPAddress("ffff:ffff::ffff")!), .port(65535)],
            [.number(.max), .number(1), .number(.max), .number(7)],
            [.proto(1), .port(2)],
            [],
        ]
        for list in lists {
            var words = [UInt64](repeating: 0, count: ValueList.maximumPackedWords)
            words.withUnsafeMutableBufferPointer { list.pack(into: $0.baseAddress!) }
            let back = words.withUnsafeBufferPointer { ValueList(shape: list.shape, packed: $0.baseAddress!) }
            #expect(back == list, "\(list)")
            #expect(ValueList.packedWordCount(shape: list.shape) <= ValueList.maximumPackedWords)
        }
    }
}

extension ElementSetTests {
    @Test func countsGoUpAndDownAndVanishAtZero() {
        var counts = ElementSet()
        var reference: [Int: Int] = [:]
        var random = SplitMix(state: 42)
        for _ in 0 ..< 5000 {
            let n = random.next(300)
            let key: ValueList = [.address(Self.address(n, v6: n % 2 == 0)), .proto(6), .port(UInt16(n))]
            let delta = random.next(3) == 0 ? -1 : 1
            let expected = (reference[n] ?? 0, max(0, (reference[n] ?? 0) + delta))
            let got = counts.adjustCount(key, by: delta)
            #expect(got.before == expected.0 && got.after == expected.1)
            reference[n] = expected.1 > 0 ? expected.1 : nil
            #expect(counts.contains(key) == (reference[n] != nil))
        }
        #expect(counts.count == reference.count)
    }
}
