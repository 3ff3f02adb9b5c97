/// Kubernetes' name rules for the parts of mirrored DNS names.
public enum DNSLabel {
    /// RFC 1123 label: 1–63 lowercase letters, digits and '-', starting and ending alphanumeric.
    ///
    /// Reads the UTF-8 view in place: it runs for several names of every service on each load.
    public static func isValid(_ text: String) -> Bool {
        let bytes = text.utf8
        guard (1...63).contains(bytes.count) else { return false }
        func alnum(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) }
        guard let first = bytes.first, let last = bytes.last, alnum(first), alnum(last) else { return false }
        return bytes.allSatisfy { alnum($0) || $0 == 0x2D }
    }

    /// A dot-separated name of valid labels, at most 253 characters (the cluster domain).
    public static func isValidDomain(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 253 else { return false }
        return text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isValid(String($0)) }
    }

    /// An IANA service name as Kubernetes requires for named ports (they become SRV labels):
    /// 1–15 characters, lowercase alphanumerics and '-', at least one letter, no '--'.
    public static func isValidPortName(_ text: String) -> Bool {
        guard text.utf8.count <= 15, isValid(text) else { return false }
        // Byte scans: `String.contains("--")` resolves to Foundation's `range(of:)` here, which
        // was a tenth of a 100k-service load (one named port per service).
        let bytes = text.utf8
        return bytes.contains { $0 >= 0x61 && $0 <= 0x7A } && !zip(bytes, bytes.dropFirst()).contains { $0 == 0x2D && $1 == 0x2D }
    }
}
