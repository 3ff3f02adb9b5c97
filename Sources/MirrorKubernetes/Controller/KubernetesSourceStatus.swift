import Foundation

/// What `mirror-agent dump` shows of the Kubernetes source, and what its metrics count.
public struct KubernetesSourceStatus: Sendable, Codable, Equatable {
    public struct Link: Sendable, Codable, Equatable {
        /// The Link object, `namespace/name`.
        public var link: String
        /// Its `targetClusterName`.
        public var cluster: String?
        /// Every watch of the remote cluster is open and healthy.
        public var connected: Bool
        /// The remote cluster was listed at least once: its mirrors follow it.
        public var synced: Bool
        /// Listed before but failing now: the mirrors keep the last state heard.
        public var stale: Bool
        public var lastEvent: Date?
        public var lastError: String?
        /// Services of this cluster in the published state.
        public var servicesMirrored: Int
        /// The gateway's probes; nil when the Link has no probeSpec.
        public var gateway: GatewayProbeStatus?
    }

    public var identity: String
    public var leader: LeaderElector.Status
    /// The Link watch has listed the Links at least once.
    public var linksListed: Bool
    public var links: [Link]
    /// Whether a state has been published, and when last.
    public var published: Bool
    public var lastPublished: Date?
    public var servicesPublished: Int
    /// Mirror Services wanted, and the writer's counters and problems (leader only).
    public var mirrorServicesDesired: Int
    public var created: Int
    public var updated: Int
    public var deleted: Int
    /// Mirror Services not written, by `namespace/name` (a name clash, a missing namespace).
    public var writeProblems: [String: String]
    /// What the translation left out (the first 100), each naming the object and the reason:
    /// TrafficSplits (`TrafficSplit ns/name: …`), then mirrors.
    public var skipped: [String]
    public var skippedCount: Int
    /// Traffic policies (from TrafficSplits) in the published state.
    public var policies: Int
    /// Whether the local API serves TrafficSplits (SMI's CRD); absent means no policies.
    public var trafficSplits: TrafficSplitAvailability
}
