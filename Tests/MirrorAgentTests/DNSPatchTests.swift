import DNSResponder
import Testing
@testable import MirrorAgent
import MirrorModel
import MirrorFeed

/// When one service's change can patch the DNS table and when it needs a full build.
@Suite("DNS table patches")
struct DNSPatchTests {
    private static func service(_ name: String, ip: String, port: Int) -> MirroredService {
        MirroredService(name: name, namespace: "default", cluster: "paris", mode: .gateway, ips: [ip],
                        ports: [ServicePort(name: "http", port: port)])
    }

    private static func store(_ services: [MirroredService]) throws -> MirrorStore {
        var store = MirrorStore()
        _ = try store.applySnapshot(MirrorState(clusters: [Cluster(name: "paris", gateway: Gateway(addresses: ["10.99.1.2"]))],
                                                services: services), revision: 1)
        return store
    }

    @Test("two services added together on one ClusterIP (one PTR name) need a build; one alone is patched")
    func sharedNameAddedTogether() throws {
        let first = Self.service("one", ip: "10.112.0.10", port: 80)
        let (table, shared) = try DNSComponent.buildTable(try Self.store([first]), ttl: 5)
        let two = Self.service("two", ip: "10.112.0.11", port: 80), three = Self.service("three", ip: "10.112.0.11", port: 81)

        var alone = ChangeSet()
        alone.addedServices = [two.key]
        #expect(try DNSComponent.patch(table, sharedNames: shared, to: try Self.store([first, two]), changes: alone, ttl: 5) != nil)

        var together = ChangeSet()
        together.addedServices = [two.key, three.key]
        #expect(try DNSComponent.patch(table, sharedNames: shared, to: try Self.store([first, two, three]), changes: together, ttl: 5) == nil)
    }
}
