import Foundation
import NFTables
import MirrorModel
import MirrorFeed

/// What `mirror-agent dump` shows of a gateway, as its admin socket sends it (JSON).
struct GatewayStatus: Codable, Sendable {
    /// Always "gateway": tells `dump` which report to print.
    var role = "gateway"
    var pid: Int32
    var version: String
    var startedAt: Date
    var source: String
    /// Whether `/ready` answers 200, and why not.
    var ready: Bool
    var notReadyReason: String?
    var cluster: String?
    var gatewayAddresses: [String]
    var allowedSources: [String]
    var lastChange: Date?
    var lastError: String?
    /// The last document the source offered and the gateway refused (kept the previous one).
    var lastRejected: String?
    var feedConnected: Bool?
    var syncs: Int
    var failures: Int
    var lastDurationMilliseconds: Double?
    var lastBatch: String?
    var ports: [Port]
    /// Packets dropped because their source is not allowed, all ports together.
    var refusedPackets: UInt64?
    /// Conntrack entries of UDP/SCTP flows deleted because their endpoint went away; nil when
    /// ctnetlink is not reachable.
    var conntrackDeleted: Int?
    /// The feed client's certificate and CA bundle, and when they expire.
    var tls: [AgentStatus.TLSFile]?

    /// One exported service port.
    struct Port: Codable, Sendable {
        var service: String
        var name: String?
        var `protocol`: String
        var port: Int
        var targetPort: Int
        var gatewayPort: Int
        /// Ready endpoints as `ip:targetPort`; empty means connections are refused.
        var targets: [String]
        var notReady: Int
        var packets: UInt64?
        var bytes: UInt64?
        var refusedPackets: UInt64?
    }
}

/// The gateway tables' kernel counters per exported port (`proto/gatewayPort`), summed over
/// the gateway's addresses: traffic steered to the port, and packets refused for their source.
struct GatewayCounters: Sendable {
    var steered: [String: NFTables.Counter] = [:]
    var refused: [String: NFTables.Counter] = [:]

    static func key(proto: UInt8, port: UInt16) -> String { "\(proto)/\(port)" }

    /// Reads the gateway's tables; empty when they cannot be read (no permission, not yet made).
    static func read(_ role: MirrorTables.Role) -> GatewayCounters {
        guard let backend = try? KernelRulesetBackend() else { return GatewayCounters() }
        defer { backend.close() }
        guard let snapshot = try? backend.read(role.tableIDs) else { return GatewayCounters() }
        var result = GatewayCounters()
        for (_, sets) in snapshot.counters {
            for (set, elements) in sets {
                for (key, counter) in elements {
                    guard key.count == 3, case .proto(let proto) = key[1], case .port(let port) = key[2] else { continue }
                    let slot = Self.key(proto: proto, port: port)
                    if set == MirrorTables.guardedPortsSet {
                        result.refused[slot, default: NFTables.Counter(packets: 0, bytes: 0)].add(counter)
                    } else {
                        result.steered[slot, default: NFTables.Counter(packets: 0, bytes: 0)].add(counter)
                    }
                }
            }
        }
        return result
    }

    var refusedTotal: UInt64 { refused.values.reduce(0) { $0 &+ $1.packets } }
}

extension GatewayStatus.Port {
    /// The rows of `document`, with `counters` where the kernel has them.
    static func rows(_ document: ExportsDocument?, counters: GatewayCounters?) -> [GatewayStatus.Port] {
        guard let document else { return [] }
        return document.exports.flatMap { export in
            let ready = export.endpoints.filter(\.ready)
            return export.ports.map { port in
                let slot = GatewayCounters.key(proto: port.protocol.number, port: UInt16(clamping: port.gatewayPort))
                let steered = counters?.steered[slot]
                return GatewayStatus.Port(
                    service: export.key, name: port.name, protocol: port.protocol.rawValue, port: port.port,
                    targetPort: port.targetPort, gatewayPort: port.gatewayPort,
                    targets: ready.map { $0.ip.contains(":") ? "[\($0.ip)]:\(port.targetPort)" : "\($0.ip):\(port.targetPort)" },
                    notReady: export.endpoints.count - ready.count,
                    packets: steered?.packets, bytes: steered?.bytes, refusedPackets: counters.map { $0.refused[slot]?.packets ?? 0 })
            }
        }.sorted { ($0.service, $0.gatewayPort) < ($1.service, $1.gatewayPort) }
    }
}
