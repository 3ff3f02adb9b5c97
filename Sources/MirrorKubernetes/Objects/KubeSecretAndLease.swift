import Foundation

/// A core/v1 Secret; the mirror reads Linkerd's cluster credentials from one.
public struct KubeSecret: KubeObject, Hashable {
    public static let resource = KubeResource(group: "", version: "v1", plural: "secrets", kind: "Secret")
    /// The key under which Linkerd's Link credentials Secret holds the remote kubeconfig.
    public static let kubeconfigKey = "kubeconfig"

    public var metadata: ObjectMeta
    public var type: String?
    /// Base64 on the wire; JSONDecoder's default data strategy decodes it.
    public var data: [String: Data]?

    public init(metadata: ObjectMeta, type: String? = nil, data: [String: Data]? = nil) {
        self.metadata = metadata
        self.type = type
        self.data = data
    }

    /// The kubeconfig this Secret carries (a Link's `clusterCredentialsSecret`).
    public func kubeconfig() throws -> KubeConfig {
        let source = "kubeconfig in Secret \(metadata.key)"
        guard let bytes = data?[Self.kubeconfigKey] else {
            throw KubeConfigError(source: source, issues: ["data: has no key \"\(Self.kubeconfigKey)\""])
        }
        return try KubeConfig.parse(String(decoding: bytes, as: UTF8.self), source: source)
    }
}

/// A coordination.k8s.io/v1 Lease, for leader election among feed replicas.
public struct KubeLease: KubeObject, Hashable {
    public static let resource = KubeResource(group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease")

    public var metadata: ObjectMeta
    public var spec: KubeLeaseSpec

    public init(metadata: ObjectMeta, spec: KubeLeaseSpec = KubeLeaseSpec()) {
        self.metadata = metadata
        self.spec = spec
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        metadata = try container.decode(ObjectMeta.self, forKey: .metadata)
        spec = try container.decodeIfPresent(KubeLeaseSpec.self, forKey: .spec) ?? KubeLeaseSpec()
    }
}

public struct KubeLeaseSpec: Codable, Sendable, Hashable {
    public var holderIdentity: String?
    public var leaseDurationSeconds: Int?
    /// MicroTime text (`KubeTime.microTime(_:)` makes it; the API accepts exactly 6 digits).
    public var acquireTime: String?
    public var renewTime: String?
    public var leaseTransitions: Int?

    public init(holderIdentity: String? = nil, leaseDurationSeconds: Int? = nil, acquireTime: String? = nil,
                renewTime: String? = nil, leaseTransitions: Int? = nil) {
        self.holderIdentity = holderIdentity
        self.leaseDurationSeconds = leaseDurationSeconds
        self.acquireTime = acquireTime
        self.renewTime = renewTime
        self.leaseTransitions = leaseTransitions
    }
}

/// The API's two time formats, kept as text in the objects so nothing is lost in a round trip.
public enum KubeTime {
    /// `2006-01-02T15:04:05.000000Z`: MicroTime, which the server parses with exactly six
    /// fractional digits.
    public static func microTime(_ date: Date) -> String {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        let micros = min(999_999, Int(((date.timeIntervalSince1970 - seconds) * 1_000_000).rounded()))
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), micros)
    }

    /// Parses RFC 3339 with or without fractional seconds (Time and MicroTime).
    public static func parse(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        if let date = formatter.date(from: text) { return date }
        // Foundation reads at most milliseconds: cut the fraction to three digits.
        guard let dot = text.firstIndex(of: "."),
              let end = text[dot...].firstIndex(where: { $0 == "Z" || $0 == "+" || $0 == "-" }) else { return nil }
        let fraction = text[text.index(after: dot)..<end]
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: String(text[..<dot]) + "." + fraction.prefix(3).padding(toLength: 3, withPad: "0", startingAt: 0)
                              + text[end...])
    }
}
