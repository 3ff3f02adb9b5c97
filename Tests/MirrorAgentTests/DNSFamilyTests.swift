import NIOCore
import NFTables
import Testing
@testable import DNSResponder
@testable import MirrorAgent
import MirrorModel
import MirrorFeed

/// A/AAAA only for the families that can carry a service's traffic (issue 16, item 7): by
/// the gateway's address families, or the endpoints' (ready or not); all ClusterIPs when no
/// family has targets; PTRs, SRVs and pod names as before; and the rules agree.
@Suite("DNS: advertised address families")
struct DNSFamilyTests {
    static let v4 = "10.112.0.10", v6 = "fd00:112::10"

    static func gateway(_ name: String, _ addresses: [String], alive: Bool = true) -> Cluster {
        Cluster(name: name, gateway: Gateway(addresses: addresses, alive: alive))
    }

    static func service(_ name: String, cluster: String? = "paris", mode: MirrorMode = .gateway, ips: [String] = [v4, v6],
                        endpoints: [Endpoint] = []) -> MirroredService {
        MirroredService(name: name, namespace: "default", cluster: mode == .federated ? nil : cluster, mode: mode, ips: ips,
                        ports: [ServicePort(name: "http", port: 80, targetPort: 8080)], endpoints: endpoints)
    }

    static func store(_ clusters: [Cluster], _ services: [MirroredService], revision: UInt64 = 1) throws -> MirrorStore {
        var store = MirrorStore()
        _ = try store.applySnapshot(MirrorState(clusters: clusters, services: services), revision: revision)
        return store
    }

    /// The address records at `name` in `store`'s translation, as text.
    static func addresses(_ name: String, in store: MirrorStore) throws -> [String] {
        let content = try DNSRecordTranslator.content(for: store, ttl: 5)
        let owner = try DNSName(name)
        return content.records.filter { $0.name == owner }.compactMap { record in
            switch record.data {
            case .a(let bytes): IPAddress(v4Bytes: bytes).description
            case .aaaa(let bytes): IPAddress(v6Bytes: bytes).description
            default: nil
            }
        }.sorted()
    }

    static let bar = "bar-paris.default.svc.cluster.local"

    @Test("gateway mode: by the gateway's address families, whether it is alive or not")
    func gatewayFamilies() throws {
        let cases: [([String], Bool, [String])] = [
            (["10.99.1.2"], true, [Self.v4]),
            (["10.99.1.2"], false, [Self.v4]),
            (["fd99:1::2"], true, [Self.v6]),
            (["fd99:1::2"], false, [Self.v6]),
            (["10.99.1.2", "fd99:1::2"], true, [Self.v4, Self.v6]),
            (["10.99.1.2", "fd99:1::2"], false, [Self.v4, Self.v6]),
        ]
        for (gateways, alive, expected) in cases {
            let store = try Self.store([Self.gateway("paris", gateways, alive: alive)], [Self.service("bar")])
            #expect(try Self.addresses(Self.bar, in: store) == expected.sorted(), "gateway \(gateways) alive \(alive)")
        }
    }

    @Test("remote-discovery and federated: by every endpoint's family, ready or not; no endpoints: every ClusterIP")
    func endpointFamilies() throws {
        let clusters = [Cluster(name: "paris"), Cluster(name: "berlin")]
        let cases: [([Endpoint], [String])] = [
            ([Endpoint(ip: "10.20.1.5"), Endpoint(ip: "10.20.1.6", ready: false)], [Self.v4]),
            ([Endpoint(ip: "10.20.1.5", ready: false)], [Self.v4]),
            ([Endpoint(ip: "fd20:1::5")], [Self.v6]),
            ([Endpoint(ip: "10.20.1.5"), Endpoint(ip: "fd20:1::5", ready: false)], [Self.v4, Self.v6]),
            ([], [Self.v4, Self.v6]),
        ]
        for (endpoints, expected) in cases {
            let flat = try Self.store(clusters, [Self.service("baz", mode: .remoteDiscovery, endpoints: endpoints)])
            #expect(try Self.addresses("baz-paris.default.svc.cluster.local", in: flat) == expected.sorted(), "\(endpoints)")

            let federatedEndpoints = endpoints.enumerated().map { index, endpoint in
                var endpoint = endpoint
                endpoint.cluster = index.isMultiple(of: 2) ? "paris" : "berlin"
                return endpoint
            }
            let federated = try Self.store(clusters, [Self.service("web", mode: .federated, endpoints: federatedEndpoints)])
            #expect(try Self.addresses("web-federated.default.svc.cluster.local", in: federated) == expected.sorted(), "\(endpoints)")
            #expect(try Self.addresses("web.default.svc.clusterset.local", in: federated) == expected.sorted(), "MCS name: \(endpoints)")
        }
    }

    @Test("one family of ClusterIPs is always given out, even with targets of the other family only")
    func singleFamily() throws {
        let v4Only = try Self.store([Self.gateway("paris", ["fd99:1::2"])], [Self.service("bar", ips: [Self.v4])])
        #expect(try Self.addresses(Self.bar, in: v4Only) == [Self.v4])
        let v6Only = try Self.store([Cluster(name: "paris")],
                                    [Self.service("baz", mode: .remoteDiscovery, ips: [Self.v6], endpoints: [Endpoint(ip: "10.20.1.5")])])
        #expect(try Self.addresses("baz-paris.default.svc.cluster.local", in: v6Only) == [Self.v6])
    }

    @Test("a ClusterIP left out keeps its PTR; SRV and pod names stay; the name answers AAAA with NODATA")
    func otherNames() throws {
        let store = try Self.store([Cluster(name: "paris")], [
            Self.service("baz", mode: .remoteDiscovery, endpoints: [Endpoint(ip: "10.20.1.5", hostname: "baz-0")]),
        ])
        let content = try DNSRecordTranslator.content(for: store, ttl: 5)
        let name = try DNSName("baz-paris.default.svc.cluster.local")
        for ip in [Self.v4, Self.v6] {
            let reverse = try #require(try DNSRecordTranslator.reverseName(ip))
            #expect(content.records.contains(DNSRecord(name: reverse, ttl: 5, data: .ptr(name))), "PTR of \(ip)")
        }
        #expect(content.records.contains { $0.name == (try? DNSName("_http._tcp.baz-paris.default.svc.cluster.local")) })
        #expect(try Self.addresses("baz-0.baz-paris.default.svc.cluster.local", in: store) == ["10.20.1.5"])

        let table = try DNSComponent.buildTable(store, ttl: 5).0
        let aaaa = try #require(try Self.ask("baz-paris.default.svc.cluster.local", .aaaa, table))
        #expect(aaaa.header.responseCode == .noError && aaaa.answers.isEmpty, "NODATA: \(aaaa)")
        #expect(aaaa.authorities.first?.data.type == .soa, "with the zone's SOA: \(aaaa)")
        let a = try #require(try Self.ask("baz-paris.default.svc.cluster.local", .a, table))
        #expect(a.answers.map(\.data) == [.a([10, 112, 0, 10])])
    }

    @Test("the dump marks the ClusterIPs DNS leaves out, and why")
    func dump() throws {
        let store = try Self.store([Self.gateway("paris", ["10.99.1.2"])], [Self.service("bar")])
        let (_, services) = AgentStatus.inventory(store, counters: [:])
        let routes = try #require(services.first?.routes)
        #expect(routes.first { $0.frontend.hasPrefix("10.") }?.notInDNS == nil)
        #expect(routes.first { $0.frontend.hasPrefix("[") }?.notInDNS == "no v6 targets")
        // Each ClusterIP's targets are those of its family, as in the kernel: the v6 one is rejected.
        #expect(routes.first { $0.frontend.hasPrefix("10.") }?.targets == ["10.99.1.2:4143"])
        #expect(routes.first { $0.frontend.hasPrefix("[") }?.targets == [])
        let status = AgentStatus(agent: .init(pid: 1, version: "test", startedAt: .now),
                                 feed: .init(source: "file", ready: true, revision: 1, updates: 1),
                                 clusters: [], services: services,
                                 dns: .init(enabled: true, failures: 0, detail: [:]), nftables: .init(enabled: true, failures: 0, detail: [:]))
        let text = StatusReport(status).text
        // The second row of a service stays in its column.
        #expect(text.contains("\n" + String(repeating: " ", count: Self.bar.count + 2 + "gateway".count + 2)
                              + "[fd00:112::10]:80/TCP (no v6 targets: not in DNS)  REJECT (no live target)"), "\(text)")
        #expect(!text.contains("10.112.0.10:80/TCP (no"), "\(text)")
    }

    /// DNS gives out a ClusterIP only if the rules can ever send its traffic somewhere (a
    /// target of its family when everything is up), and every ClusterIP whose rules do send
    /// traffic somewhere is given out, over a matrix of gateways, endpoints and liveness.
    @Test("the rules agree: a family DNS leaves out never has a target, one it gives out has targets when all is up")
    func rulesAgree() throws {
        let addressSets = [["10.9.0.1"], ["fd09::1"], ["10.9.0.1", "fd09::1"]]
        let ipSets = [[Self.v4], [Self.v6], [Self.v4, Self.v6]]
        var checked = 0
        for ips in ipSets {
            for up in [true, false] {
                for addresses in addressSets {
                    let service = Self.service("bar", ips: ips)
                    try check(service, clusters: [Self.gateway("paris", addresses, alive: up)], allUp: up)
                    checked += 1
                }
                for addresses in addressSets + [[]] {
                    let endpoints = addresses.map { Endpoint(ip: $0, ready: up) }
                    try check(Self.service("baz", mode: .remoteDiscovery, ips: ips, endpoints: endpoints),
                              clusters: [Cluster(name: "paris")], allUp: up)
                    try check(Self.service("web", mode: .federated, ips: ips, endpoints: endpoints.map {
                        var endpoint = $0
                        endpoint.cluster = "paris"
                        return endpoint
                    }), clusters: [Cluster(name: "paris")], allUp: up)
                    checked += 2
                }
            }
        }
        #expect(checked == 66)

        func check(_ service: MirroredService, clusters: [Cluster], allUp: Bool) throws {
            let store = try Self.store(clusters, [service])
            let advertised = Set(try Self.addresses(service.dnsName(zone: store.clusterDomain), in: store))
            let rules = RulesTranslator.rules(for: service, clusters: store.clusters)
            let targetFamilies = Set(rules.flatMap(\.targets).map(\.address.family))
            let noTargetAnywhere = service.targetFamilies(gatewayFamilies: { store.clusters[$0]?.gatewayFamilies })
                .intersection(service.clusterIPFamilies).isEmpty
            for ip in service.ips.compactMap(IPAddress.init) {
                let given = advertised.contains(ip.description)
                if !given { #expect(!targetFamilies.contains(ip.family), "\(ip) left out of DNS but has targets: \(service) \(clusters)") }
                if targetFamilies.contains(ip.family) { #expect(given, "\(ip) has targets but is not in DNS: \(service) \(clusters)") }
                if allUp && given && !noTargetAnywhere {
                    #expect(targetFamilies.contains(ip.family), "\(ip) in DNS without a target of its family when all is up: \(service)")
                }
                // Nothing carries any family: every ClusterIP stays in DNS, and is refused at once.
                if noTargetAnywhere { #expect(given, "\(ip) left out although no family has targets: \(service)") }
            }
        }
    }

    /// New gateway families of a cluster change its dual-stack services' names without the
    /// services changing: those are patched like changed services, and the patched table
    /// answers like a fresh build. A change of liveness alone patches nothing.
    @Test("a cluster's new gateway families re-translate its dual-stack gateway services; liveness alone does not")
    func gatewayFamiliesChange() throws {
        let services = [Self.service("bar"), Self.service("solo", ips: ["10.112.0.20"]),
                        Self.service("baz", mode: .remoteDiscovery, ips: ["10.112.0.30", "fd00:112::30"], endpoints: [Endpoint(ip: "10.20.1.5")])]
        let before = try Self.store([Self.gateway("paris", ["10.99.1.2"])], services)
        let (table, shared) = try DNSComponent.buildTable(before, ttl: 5)

        var changes = ChangeSet()
        changes.changedClusters = ["paris"]
        let dead = try Self.store([Self.gateway("paris", ["10.99.1.2"], alive: false)], services, revision: 2)
        #expect(DNSRecordTranslator.servicesRefamilied(by: changes, store: dead, before: before.gatewayFamilies, after: dead.gatewayFamilies).isEmpty)

        let after = try Self.store([Self.gateway("paris", ["10.99.1.2", "fd99:1::2"])], services, revision: 2)
        let refamilied = DNSRecordTranslator.servicesRefamilied(by: changes, store: after, before: before.gatewayFamilies, after: after.gatewayFamilies)
        #expect(refamilied == [Self.service("bar").key], "only the dual-stack gateway-mode service")
        // Unknown families before (a fresh component): every dual-stack service of the cluster.
        #expect(DNSRecordTranslator.servicesRefamilied(by: changes, store: after, before: [:], after: after.gatewayFamilies) == refamilied)

        changes.changedServices = refamilied
        let patched = try #require(try DNSComponent.patch(table, sharedNames: shared, to: after, changes: changes, ttl: 5))
        let rebuilt = try DNSComponent.buildTable(after, ttl: 5).0
        for (name, type) in [(Self.bar, DNSRecordType.aaaa), (Self.bar, .a), ("solo-paris.default.svc.cluster.local", .aaaa),
                             ("baz-paris.default.svc.cluster.local", .aaaa)] {
            let fromPatch = try Self.ask(name, type, patched), fromBuild = try Self.ask(name, type, rebuilt)
            #expect(fromPatch?.answers == fromBuild?.answers && fromPatch?.authorities == fromBuild?.authorities, "\(name) \(type)")
        }
        #expect(try Self.ask(Self.bar, .aaaa, patched)?.answers.map(\.data) == [.aaaa(IPAddress(Self.v6)!.bytes)])
    }

    /// The reply `table` gives to `name type` (nil when it would forward or drop).
    static func ask(_ name: String, _ type: DNSRecordType, _ table: DNSRecordTable) throws -> DNSMessage? {
        var header = DNSHeader(id: 7)
        header.recursionDesired = true
        let query = try DNSMessage(header: header, questions: [DNSQuestion(name: try DNSName(name), type: type, class: .in)]).encoded()
        var output = ByteBufferAllocator().buffer(capacity: 512)
        let result = query.withUnsafeBytes { DNSQueryProcessor(access: .standard()).process($0, allowed: true, overTCP: false, table: table, into: &output) }
        guard case .reply = result else { return nil }
        return try DNSMessage(parsing: Array(output.readableBytesView))
    }
}
