import DNSResponder
import Testing
@testable import MirrorAgent
import Sync

/// The full DNS table built by several threads at once is the one built service by service.
@Suite("DNS table build")
struct DNSTableBuildTests {
    @Test("split over parts, the table holds the same names and bytes, and the same shared names, as built in one go")
    func partsEqualOneGo() throws {
        var services: [MirroredService] = []
        for index in 0..<3_000 {
            let ip = "10.100.\(index / 250).\(index % 250 + 1)"
            switch index % 3 {
            case 0:
                services.append(MirroredService(name: "svc\(index)", namespace: "ns\(index % 7)", cluster: "paris", mode: .gateway, ips: [ip],
                                                ports: [ServicePort(name: "http", port: 80)]))
            case 1:
                services.append(MirroredService(name: "svc\(index)", namespace: "ns\(index % 7)", cluster: "berlin", mode: .remoteDiscovery,
                                                ips: [ip], ports: [ServicePort(name: "http", port: 80, targetPort: 8080)],
                                                endpoints: [Endpoint(ip: "10.20.\(index / 250).\(index % 250 + 1)", hostname: "pod-0")]))
            default:
                services.append(MirroredService(name: "svc\(index)", namespace: "ns\(index % 7)", mode: .federated, ips: [ip],
                                                ports: [ServicePort(name: "http", port: 80, targetPort: 8080)],
                                                endpoints: [Endpoint(ip: "10.20.\(index / 250).\(index % 250 + 1)", cluster: "paris"),
                                                            Endpoint(ip: "10.30.\(index / 250).\(index % 250 + 1)", cluster: "berlin")]))
            }
        }
        var store = MirrorStore()
        _ = try store.applySnapshot(MirrorState(clusters: [Cluster(name: "paris", gateway: Gateway(addresses: ["10.99.1.2"])),
                                                           Cluster(name: "berlin", gateway: Gateway(addresses: ["10.99.2.2"]))],
                                                services: services), revision: 1)
        let (whole, wholeShared) = try DNSComponent.buildTable(store, ttl: 5, parts: 1)
        let (split, splitShared) = try DNSComponent.buildTable(store, ttl: 5, parts: 3, minimumPerPart: 500)
        #expect(split.nameCount == whole.nameCount)
        #expect(split.nameCount > 6_000)
        #expect(split.byteCount == whole.byteCount)
        #expect(splitShared == wholeShared)
        for service in store.services.values {
            let name = try DNSName(service.dnsName(zone: store.clusterDomain))
            #expect(split.contains(name))
            #expect(split.partNames(head: name).map(Set.init) == whole.partNames(head: name).map(Set.init))
        }
    }
}
