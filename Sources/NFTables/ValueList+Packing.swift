/// Packing a ``ValueList`` into as few 64-bit words as its parts need.
///
/// A list stores 40 bytes whatever it holds; an IPv4 slot `daddr . l4proto . dport` carries
/// 56 bits of information. Lists of one set all share one ``shape`` (the kinds, count and
/// family of their parts), so ``ElementSet`` keeps the shape once per set and packs each key and
/// value into ``packedWordCount(shape:)`` words: one for an IPv4 slot or `addr . port`
/// target, two for a `daddr . l4proto . dport . k` slot, three for an IPv6 slot.
///
/// Layout: an IPv6 address takes two whole words first; every other part is a bit field
/// (protocol 8 bits, port 16, number 32, IPv4 address 32) laid in order into the following
/// words, a field never straddling two words. Four parts need at most four words.
extension ValueList {
    /// The most words a packed list takes.
    static let maximumPackedWords = 4

    /// What every list of one set has in common: kinds, count, family (equal lists have
    /// equal shapes).
    var shape: UInt16 { layout }

    /// The number of words ``pack(into:)`` writes for a list of `shape`.
    static func packedWordCount(shape: UInt16) -> Int {
        var words = 0, bits = 64
        forEachField(shape) { width in
            if width == 128 { words += 2; return }
            if bits + width > 64 { words += 1; bits = 0 }
            bits += width
        }
        return words
    }

    /// Calls `body` with the bit width of each part of `shape` in order (128: an IPv6 address).
    private static func forEachField(_ shape: UInt16, _ body: (Int) -> Void) {
        let count = Int((shape >> 8) & 7)
        for position in 0 ..< count {
            switch (shape >> (2 * position)) & 3 {
            case 0: body(8)
            case 1: body(16)
            case 2: body(32)
            default: body(shape & (1 << 11) != 0 ? 128 : 32)
            }
        }
    }

    /// The 32-bit slot of the part at `position` (not an address).
    private func slot(_ position: Int) -> UInt64 {
        let word = position < 2 ? slots01 : slots23
        return (word >> (32 * UInt64(position % 2))) & 0xffff_ffff
    }

    /// Writes ``packedWordCount(shape:)`` words for this list's ``shape`` at `words`.
    func pack(into words: UnsafeMutablePointer<UInt64>) {
        var word = -1, bits = 64
        var position = 0
        Self.forEachField(layout) { width in
            defer { position += 1 }
            if width == 128 {
                word += 1; words[word] = high
                word += 1; words[word] = low
                bits = 64
                return
            }
            if bits + width > 64 { word += 1; words[word] = 0; bits = 0 }
            let value = (layout >> (2 * position)) & 3 == 3 ? high >> 32 : slot(position)
            words[word] |= value << UInt64(bits)
            bits += width
        }
    }

    /// The list of `shape` that ``pack(into:)`` wrote at `words`.
    init(shape: UInt16, packed words: UnsafePointer<UInt64>) {
        layout = shape
        var word = -1, bits = 64
        var position = 0
        Self.forEachField(shape) { width in
            defer { position += 1 }
            if width == 128 {
                word += 1; high = words[word]
                word += 1; low = words[word]
                bits = 64
                return
            }
            if bits + width > 64 { word += 1; bits = 0 }
            let mask: UInt64 = width == 64 ? .max : (1 << UInt64(width)) - 1
            let value = (words[word] >> UInt64(bits)) & mask
            bits += width
            if (shape >> (2 * position)) & 3 == 3 {
                high = value << 32
            } else {
                let shifted = value << (32 * UInt64(position % 2))
                if position < 2 { slots01 |= shifted } else { slots23 |= shifted }
            }
        }
    }
}
