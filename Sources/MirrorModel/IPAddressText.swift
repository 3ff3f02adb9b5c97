#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Textual IP addresses as the mirror state carries them, checked and put in canonical form.
public enum IPAddressText {
    public enum Family: Sendable { case v4, v6 }

    /// The canonical spelling of `text` (so `10.0.0.01`-style variants and `::FFFF:…` compare
    /// equal) and its family, or `nil` when `text` is not an IP address.
    public static func canonical(_ text: String) -> (text: String, family: Family)? {
        IPAddressValue(text).map { ($0.text, $0.family) }
    }

    /// Strict dotted-quad parsing (four decimal parts 0–255, no leading zeros) into one
    /// big-endian integer, on the UTF-8 bytes and allocating nothing: it runs for every
    /// address of a state, 100k+ times per load.
    static func v4Value(_ text: String) -> UInt32? {
        var result: UInt32 = 0
        var parts = 0
        var value: UInt32 = 0, digits = 0, leadingZero = false
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                if digits == 1 && leadingZero { return nil }
                if digits == 0 { leadingZero = byte == UInt8(ascii: "0") }
                value = value * 10 + UInt32(byte - UInt8(ascii: "0"))
                digits += 1
                if digits > 3 || value > 255 { return nil }
            case UInt8(ascii: "."):
                guard digits > 0, parts < 3 else { return nil }
                result = result << 8 | value
                parts += 1
                value = 0
                digits = 0
            default:
                return nil
            }
        }
        guard digits > 0, parts == 3 else { return nil }
        return result << 8 | value
    }
}
