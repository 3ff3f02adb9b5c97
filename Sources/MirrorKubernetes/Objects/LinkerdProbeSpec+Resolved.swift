import Foundation

/// A Link's `probeSpec` as probes use it: the feed's prober and `mirror-agent check --links`
/// read it here, so both probe the same way.
extension LinkerdProbeSpec {
    public struct Resolved: Sendable, Hashable {
        public var path = "/ready"
        public var port = 4191
        public var period: Duration = .seconds(3)
        /// The period, at most 30 s, when unset.
        public var timeout: Duration = .seconds(3)
        public var failureThreshold = 3
        /// Each unusable field and the default used instead, for `check` to show.
        public var problems: [String] = []
    }

    /// Unusable fields fall back to Linkerd's defaults (`/ready`, 4191, 3 s, threshold 3).
    public var resolved: Resolved {
        var result = Resolved()
        if let text = port {
            if let number = Int(text), (1...65535).contains(number) { result.port = number } else { result.problems.append("port \"\(text)\" is not a port: 4191 is probed") }
        }
        if let path, !path.isEmpty { result.path = path.hasPrefix("/") ? path : "/" + path }
        if let text = period {
            if let value = GoDuration.parse(text), value > .zero { result.period = value } else { result.problems.append("period \"\(text)\" is not a duration (e.g. 3s): 3s is used") }
        }
        result.timeout = min(result.period, .seconds(30))
        if let text = timeout {
            if let value = GoDuration.parse(text), value > .zero {
                result.timeout = value
            } else {
                let seconds = Double(result.timeout.components.seconds) + Double(result.timeout.components.attoseconds) / 1e18
                result.problems.append("timeout \"\(text)\" is not a duration (e.g. 2s): \(seconds == seconds.rounded() ? "\(Int(seconds)) s" : String(format: "%.3g s", seconds)) is used")
            }
        }
        if let text = failureThreshold {
            if let number = Int(text), number >= 1 { result.failureThreshold = number } else { result.problems.append("failureThreshold \"\(text)\" is not a positive number: 3 is used") }
        }
        return result
    }
}

/// Go's duration text (`3s`, `500ms`, `1m30s`, `1.5s`, `0`), as Linkerd writes probe periods.
public enum GoDuration {
    public static func parse(_ text: String) -> Duration? {
        let units: [(String, Double)] = [("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)]
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        guard !rest.isEmpty else { return nil }
        if rest == "0" { return .zero }
        var total = 0.0
        while !rest.isEmpty {
            let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            guard let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            // "ms" is tried before "m" (listed first), so "m" never eats the "m" of "ms".
            guard let unit = units.first(where: { rest.hasPrefix($0.0) }) else { return nil }
            total += value * unit.1
            rest = rest.dropFirst(unit.0.count)
        }
        return .seconds(total)
    }
}
