import Testing
import MirrorModel

/// `AddressFamilies` and `MirroredService.advertisedFamilies`: which ClusterIP families DNS
/// gives out (issue 16, item 7).
@Suite struct AddressFamiliesTests {
    @Test func familiesOfAddresses() {
        #expect(AddressFamilies(address: "10.0.0.1") == .v4)
        #expect(AddressFamilies(address: "fd00::1") == .v6)
        #expect(AddressFamilies(address: "::ffff:10.0.0.1") == .v6, "a v4-mapped address is an IPv6 address, as for the rules")
        #expect(AddressFamilies(address: "gateway.example") == [])
        #expect(AddressFamilies(addresses: ["10.0.0.1", "10.0.0.2"]) == .v4)
        #expect(AddressFamilies(addresses: ["10.0.0.1", "not an address", "fd00::1"]) == .both)
        #expect(AddressFamilies(addresses: []).description == "none")
        #expect(AddressFamilies.both.description == "v4+v6")
        #expect(Cluster(name: "flat").gatewayFamilies == [])
        #expect(Cluster(name: "paris", gateway: Gateway(addresses: ["fd99::2"], alive: false)).gatewayFamilies == .v6)
    }

    @Test func advertisedFamilies() {
        let clusters = ["paris": Cluster(name: "paris", gateway: Gateway(addresses: ["10.99.1.2"], alive: false)),
                        "flat": Cluster(name: "flat")]
        func service(_ mode: MirrorMode, _ ips: [String], cluster: String = "paris", endpoints: [String] = []) -> MirroredService {
            MirroredService(name: "bar", namespace: "default", cluster: cluster, mode: mode, ips: ips, ports: [ServicePort(port: 80)],
                            endpoints: endpoints.map { Endpoint(ip: $0, ready: false) })
        }
        let dual = ["10.112.0.10", "fd00::10"]
        // Gateway mode: the gateway's families, dead or alive.
        #expect(service(.gateway, dual).advertisedFamilies(clusters: clusters) == .v4)
        // A cluster without a gateway (or unknown): no targets of any family, so every ClusterIP.
        #expect(service(.gateway, dual, cluster: "flat").advertisedFamilies(clusters: clusters) == .both)
        #expect(service(.gateway, dual, cluster: "gone").advertisedFamilies(clusters: clusters) == .both)
        // Pod modes: the endpoints' families, ready or not; none at all: every ClusterIP.
        #expect(service(.remoteDiscovery, dual, cluster: "flat", endpoints: ["fd20::5"]).advertisedFamilies(clusters: clusters) == .v6)
        #expect(service(.remoteDiscovery, dual, cluster: "flat").advertisedFamilies(clusters: clusters) == .both)
        // One family of ClusterIPs is that family, whatever the targets.
        #expect(service(.gateway, ["fd00::10"]).advertisedFamilies(clusters: clusters) == .v6)
        #expect(service(.remoteDiscovery, ["10.112.0.10"], cluster: "flat", endpoints: ["fd20::5"]).advertisedFamilies(clusters: clusters) == .v4)
        // The three spellings agree.
        let store = ["paris": AddressFamilies.v4, "flat": []]
        #expect(service(.gateway, dual).advertisedFamilies(gatewayFamilies: store) == .v4)
        #expect(service(.gateway, dual).targetFamilies(gatewayFamilies: { store[$0] }) == .v4)
    }
}
