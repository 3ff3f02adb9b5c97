#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DNSResponder
import MirrorModel
import MirrorFeed

/// Translates the mirror state into the record table's plain input, following the
/// Kubernetes DNS-based service discovery schema for the names the agent owns:
///
/// - `<svc>-<cluster>.<ns>.svc.<zone>` (or `<svc>-federated…`): A/AAAA → mirrored ClusterIPs,
///   of the families that can carry the service's traffic only
///   (``MirroredService/advertisedFamilies(gatewayFamilies:)``: a v6 ClusterIP whose targets
///   are all IPv4 is rejected by the rules, so its name answers AAAA with NODATA);
/// - `_<port>._<proto>.<that name>`: SRV for each named port;
/// - `<hostname>.<that name>`: A/AAAA for each ready endpoint that has a hostname;
/// - the reverse name of each ClusterIP, advertised or not: PTR → the service name (an
///   address seen in a log or conntrack still names its service; the forward name then
///   simply has no record of that family);
/// - for federated services, the MCS name `<svc>.<ns>.svc.clusterset.local` (A/AAAA, SRV),
///   and `dns-version.clusterset.local TXT "1.0.0"`.
///
/// Each zone (`<zone>`, `clusterset.local`, `in-addr.arpa`, `ip6.arpa`) gets an SOA whose
/// serial is the state's revision, used in negative answers.
enum DNSRecordTranslator {
    static let clusterSetZone = "clusterset.local"

    /// The whole table content for `store`.
    static func content(for store: MirrorStore, ttl: UInt32) throws -> DNSTableContent {
        var content = try base(for: store, ttl: ttl)
        let gateways = store.gatewayFamilies
        for key in store.services.keys.sorted() {
            guard let service = store.services[key] else { continue }
            let part = try fragment(for: service, zone: store.clusterDomain, gatewayFamilies: gateways, ttl: ttl)
            content.ownedNames += part.ownedNames
            content.records += part.records
        }
        return content
    }

    /// The zones (SOA serial = the store's revision) and the names that exist whatever the
    /// services: `dns-version.clusterset.local`.
    static func base(for store: MirrorStore, ttl: UInt32) throws -> DNSTableContent {
        var content = DNSTableContent(zones: try zones(for: store, ttl: ttl))
        let version = try DNSName("dns-version." + clusterSetZone)
        content.ownedNames.append(version)
        content.records.append(DNSRecord(name: version, ttl: ttl, data: .txt([Array("1.0.0".utf8)])))
        return content
    }

    static func zones(for store: MirrorStore, ttl: UInt32) throws -> [DNSZone] {
        let serial = UInt32(truncatingIfNeeded: store.revision)
        let negativeTTL = min(ttl, DNSRecordTable.maximumNegativeTTL)
        return try [store.clusterDomain, clusterSetZone, "in-addr.arpa", "ip6.arpa"].map {
            try DNSZone.standard(origin: try DNSName($0), serial: serial, negativeTTL: negativeTTL)
        }
    }

    /// Everything one service contributes (no zones). Every name it creates is listed in
    /// `ownedNames` or owns a record, so removing the service removes exactly these names.
    /// The service's own name comes first in `ownedNames` (see ``head(of:)``).
    ///
    /// `gatewayFamilies`: every cluster's gateway address families
    /// (``MirrorStore/gatewayFamilies``), which decide the A/AAAA of gateway-mode services.
    static func fragment(for service: MirroredService, zone: String, gatewayFamilies: [String: AddressFamilies],
                         ttl: UInt32) throws -> DNSTableContent {
        var content = DNSTableContent()
        let name = try DNSName(service.dnsName(zone: zone))
        let families = service.advertisedFamilies(gatewayFamilies: gatewayFamilies)
        try addService(service, at: name, families: families, ttl: ttl, to: &content)
        for ip in service.ips {
            guard let reverse = try reverseName(ip) else { continue }
            content.ownedNames.append(reverse)
            content.records.append(DNSRecord(name: reverse, ttl: ttl, data: .ptr(name)))
        }
        // Pod names stay: each is one pod's own address, of its own family.
        for endpoint in service.endpoints where endpoint.ready {
            guard let hostname = endpoint.hostname, let data = addressData(endpoint.ip) else { continue }
            content.records.append(DNSRecord(name: try name.prepending(hostname), ttl: ttl, data: data))
        }
        if service.mode == .federated {
            let clusterSetName = try DNSName("\(service.name).\(service.namespace).svc.\(clusterSetZone)")
            try addService(service, at: clusterSetName, families: families, ttl: ttl, to: &content)
        }
        return content
    }

    /// A service's own name, `<svc>-<cluster>.<ns>.svc.<zone>`, from its key: the head
    /// under which the table lists the other names of the service's fragment.
    static func head(of key: ServiceKey, zone: String) throws -> DNSName {
        try DNSName(key.dnsName(zone: zone))
    }

    /// The services whose A/AAAA a change alters through their cluster rather than
    /// themselves: the dual-stack gateway-mode services of every changed or added cluster
    /// whose gateway families are not those of `before` (what the table was made with).
    /// A change of liveness alone alters none. Services the change adds or removes are left
    /// out: they are translated, or dropped, anyway.
    static func servicesRefamilied(by changes: ChangeSet, store: MirrorStore, before: [String: AddressFamilies],
                                   after: [String: AddressFamilies]) -> Set<ServiceKey> {
        let clusters = changes.changedClusters.union(changes.addedClusters).filter { before[$0] != after[$0] }
        guard !clusters.isEmpty else { return [] }
        var keys = Set<ServiceKey>()
        for service in store.services.values where service.mode == .gateway {
            guard let cluster = service.cluster, clusters.contains(cluster), service.clusterIPFamilies == .both else { continue }
            keys.insert(service.key)
        }
        return keys.subtracting(changes.addedServices).subtracting(changes.removedServices)
    }

    /// The service's own name in a fragment made by
    /// ``fragment(for:zone:gatewayFamilies:ttl:)`` (its first owned name), the same as
    /// ``head(of:zone:)`` for its key.
    static func head(of fragment: DNSTableContent) -> DNSName? {
        fragment.ownedNames.first
    }

    /// The names a fragment creates.
    static func names(of fragment: DNSTableContent) -> [DNSName] {
        fragment.ownedNames + fragment.records.map(\.name)
    }

    /// The service name itself (owned even without addresses), its A/AAAA records of
    /// `families`, its SRV records (whose target, the name, then resolves to those families
    /// only), and the `_<proto>` names between them.
    private static func addService(_ service: MirroredService, at name: DNSName, families: AddressFamilies, ttl: UInt32,
                                   to content: inout DNSTableContent) throws {
        content.ownedNames.append(name)
        for ip in service.ips {
            switch addressData(ip) {
            case .a(let bytes)? where families.contains(.v4):
                content.records.append(DNSRecord(name: name, ttl: ttl, data: .a(bytes)))
            case .aaaa(let bytes)? where families.contains(.v6):
                content.records.append(DNSRecord(name: name, ttl: ttl, data: .aaaa(bytes)))
            default:
                continue
            }
        }
        for port in service.ports {
            guard let portName = port.name, !portName.isEmpty else { continue }
            let protocolName = try name.prepending("_" + port.protocol.rawValue.lowercased())
            if !content.ownedNames.contains(protocolName) { content.ownedNames.append(protocolName) }
            content.records.append(DNSRecord(name: try protocolName.prepending("_" + portName), ttl: ttl,
                                             data: .srv(priority: 0, weight: 100, port: UInt16(clamping: port.port), target: name)))
        }
    }

    /// A or AAAA data for a textual address, or nil when it is neither.
    static func addressData(_ text: String) -> DNSRecordData? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return .a(withUnsafeBytes(of: v4) { Array($0) }) }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return .aaaa(withUnsafeBytes(of: v6) { Array($0) }) }
        return nil
    }

    /// `10.0.112.10.in-addr.arpa` for 10.112.0.10; nibble form under `ip6.arpa` for IPv6.
    static func reverseName(_ text: String) throws -> DNSName? {
        // Written as wire bytes directly: one of these per ClusterIP at every full build.
        var wire: [UInt8] = []
        switch addressData(text) {
        case .a(let bytes)?:
            wire.reserveCapacity(30)
            for byte in bytes.reversed() {
                let digits = Array(String(byte).utf8)
                wire.append(UInt8(digits.count))
                wire += digits
            }
            wire += Self.inAddrArpa
        case .aaaa(let bytes)?:
            wire.reserveCapacity(74)
            for byte in bytes.reversed() {
                wire += [1, Self.hexDigits[Int(byte & 0xF)], 1, Self.hexDigits[Int(byte >> 4)]]
            }
            wire += Self.ip6Arpa
        default:
            return nil
        }
        return try DNSName(wire: wire)
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
    private static let inAddrArpa: [UInt8] = [7] + Array("in-addr".utf8) + [4] + Array("arpa".utf8) + [0]
    private static let ip6Arpa: [UInt8] = [3] + Array("ip6".utf8) + [4] + Array("arpa".utf8) + [0]
}
