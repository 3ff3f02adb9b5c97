import Foundation
import NFTables
import MirrorModel
import MirrorFeed

/// What `mirror-agent dump` shows: the agent's view of its feed, the clusters and services it
/// mirrors, and what its parts did with them. Sent as JSON over the admin socket.
struct AgentStatus: Codable, Sendable {
    struct Agent: Codable, Sendable {
        var pid: Int32
        var version: String
        var startedAt: Date
    }

    struct Feed: Codable, Sendable {
        var source: String
        /// True once a state has been applied from the source.
        var ready: Bool
        var revision: UInt64
        var lastChange: Date?
        var updates: Int
        var lastError: String?
        /// For a network feed (nil for a state file): whether the watch stream is up, since
        /// when (or since when it is down), and how many times it was re-established.
        var connected: Bool? = nil
        var since: Date? = nil
        var reconnects: Int? = nil
        /// The client certificate and CA bundle in force, and when they expire.
        var tls: [TLSFile]? = nil
    }

    /// One TLS file in force: `certificate` or `ca`, and when it (or its bundle's earliest
    /// certificate) expires.
    struct TLSFile: Codable, Sendable {
        var file: String
        var kind: String
        var notAfter: Date

        init(_ expiry: TLSReloader.Expiry) {
            file = expiry.file
            kind = expiry.kind
            notAfter = expiry.notAfter
        }

        /// `certificate /etc/mirror/tls/tls.crt expires 2027-03-01 (in 86 days)`, loud when near.
        var summary: String {
            let days = Int(notAfter.timeIntervalSinceNow / 86_400)
            let when = notAfter.timeIntervalSinceNow < 0 ? "EXPIRED"
                : notAfter.timeIntervalSinceNow < Preflight.expiryWarning ? "in \(days) days: ROTATE SOON" : "in \(days) days"
            return "\(kind) \(file) expires \(ISO8601DateFormatter().string(from: notAfter)) (\(when))"
        }
    }

    struct ClusterInfo: Codable, Sendable {
        var name: String
        var gatewayAddresses: [String]
        var gatewayPort: Int?
        var alive: Bool
        var masquerade: Bool
        var services: Int
    }

    struct ServiceInfo: Codable, Sendable {
        var dnsName: String
        var mode: String
        /// `10.112.0.10:80/TCP -> 10.99.1.2:4143`, one per ClusterIP and port.
        var routes: [Route]
        var packets: UInt64?
        var bytes: UInt64?
    }

    struct Route: Codable, Sendable {
        var frontend: String
        /// Empty when the port is rejected (no live target).
        var targets: [String]
        /// Why DNS does not give this ClusterIP out (`no v6 targets`: its family has no target
        /// even when everything is up); nil when it does, and from older agents.
        var notInDNS: String? = nil
    }

    struct Part: Codable, Sendable {
        var enabled: Bool
        var lastSync: Date?
        var lastDurationMilliseconds: Double?
        var failures: Int
        var lastError: String?
        var detail: [String: String]
    }

    /// How one `--upstream` DNS server has been doing.
    struct Upstream: Codable, Sendable {
        var upstream: String
        var healthy: Bool
        var queriesSent: UInt64
        var answers: UInt64
        var timeouts: UInt64
        var errors: UInt64
        var truncatedRetries: UInt64
        /// Smoothed answer time.
        var latencyMilliseconds: Double
        var consecutiveFailures: Int
    }

    var agent: Agent
    var feed: Feed
    var clusters: [ClusterInfo]
    var services: [ServiceInfo]
    var dns: Part
    var nftables: Part
    /// Empty when DNS is off or not started yet; absent from older agents.
    var upstreams: [Upstream]? = nil
    /// Traffic policies, one row per port and backend (Rules/PolicyStatus.swift); absent from
    /// older agents.
    var policies: [PolicyRow]? = nil
}

extension AgentStatus {
    /// Cluster and service tables for `store`; counters are filled in from the kernel when
    /// `counters` (per `namespace/name` service) is given.
    static func inventory(_ store: MirrorStore, counters: [String: Counter]) -> ([ClusterInfo], [ServiceInfo]) {
        let counts = store.serviceCountsByCluster()
        let clusters = store.clusters.values.sorted { $0.name < $1.name }.map { cluster in
            ClusterInfo(name: cluster.name, gatewayAddresses: cluster.gateway?.addresses ?? [], gatewayPort: cluster.gateway?.port,
                        alive: cluster.gateway?.alive ?? true, masquerade: cluster.masquerade,
                        services: counts[cluster.name] ?? 0)
        }
        let gatewayFamilies = store.gatewayFamilies
        let services = store.services.values.sorted { $0.key < $1.key }.map { service in
            let rules = RulesTranslator.rules(for: service, clusters: store.clusters)
            let advertised = service.advertisedFamilies(gatewayFamilies: gatewayFamilies)
            let routes = rules.flatMap { rule in
                rule.addresses.map { address in
                    Route(frontend: Self.endpoint(address, rule.port) + "/" + (L4Protocol.allCases.first { $0.number == rule.proto }?.rawValue ?? "\(rule.proto)"),
                          // Only those of the ClusterIP's family, as the kernel has them.
                          targets: rule.targets.filter { $0.address.family == address.family }.map { Self.endpoint($0.address, $0.port) },
                          notInDNS: Self.dnsNote(address, advertised: advertised))
                }
            }
            let counter = counters[service.key.description]
            return ServiceInfo(dnsName: service.dnsName(zone: store.clusterDomain), mode: service.mode.rawValue, routes: routes,
                               packets: counter?.packets, bytes: counter?.bytes)
        }
        return (clusters, services)
    }

    /// `no v6 targets` for a ClusterIP of a family DNS does not give out (see
    /// ``MirroredService/advertisedFamilies(gatewayFamilies:)``), nil otherwise.
    private static func dnsNote(_ address: IPAddress, advertised: AddressFamilies) -> String? {
        let family: AddressFamilies = address.family == .ip ? .v4 : .v6
        return advertised.contains(family) ? nil : "no \(family) targets"
    }

    private static func endpoint(_ address: IPAddress, _ port: UInt16) -> String {
        let text = "\(address)"
        return text.contains(":") ? "[\(text)]:\(port)" : "\(text):\(port)"
    }

    /// Packets and bytes per service, summed over every element the kernel counts for it.
    static func kernelCounters() -> [String: Counter] {
        guard let backend = try? KernelRulesetBackend() else { return [:] }
        defer { backend.close() }
        // Summed as the dump arrives: no copy of the ruleset per scrape.
        return (try? backend.serviceCounters(MirrorTables.tableIDs)) ?? [:]
    }
}
