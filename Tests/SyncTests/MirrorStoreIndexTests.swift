import Testing
@testable import MirrorModel
@testable import MirrorFeed

/// The store's compact indexes (services by key, slots by `ip port/proto`) against a model
/// that recomputes everything by brute force, through many upserts and deletes.
@Suite struct MirrorStoreIndexTests {
    @Test func slotConflictsFollowEveryUpsertAndDelete() throws {
        var store = MirrorStore()
        let state = MirrorState(clusters: [Cluster(name: "paris", gateway: Gateway(addresses: ["192.0.2.1"])),
                                           Cluster(name: "berlin", gateway: Gateway(addresses: ["192.0.2.2"]))])
        try store.applySnapshot(state, revision: 1)
        var model: [ServiceKey: MirroredService] = [:]
        var generator = SystemRandomNumberGenerator()
        var revision: UInt64 = 1
        for _ in 0..<3000 {
            revision += 1
            let n = Int.random(in: 0..<120, using: &generator)
            let key = ServiceKey(namespace: "ns", mirroredName: "svc-\(n)-\(n % 2 == 0 ? "paris" : "berlin")")
            if Int.random(in: 0..<4, using: &generator) == 0 {
                try store.apply(.deleteService(key), revision: revision)
                model[key] = nil
            } else {
                // A few addresses and ports shared among many services: conflicts are common.
                let ips = (0..<Int.random(in: 1...2, using: &generator)).map { _ in "10.0.0.\(Int.random(in: 1...40, using: &generator))" }
                let ports = [80, 443].filter { _ in Bool.random(using: &generator) }.map { ServicePort(port: $0) }
                let service = MirroredService(name: "svc-\(n)", namespace: "ns", cluster: n % 2 == 0 ? "paris" : "berlin", mode: .gateway,
                                              ips: Array(Set(ips)), ports: ports.isEmpty ? [ServicePort(port: 8080)] : ports)
                let taken = model.values.contains { other in
                    other.key != service.key && !Set(slots(other)).isDisjoint(with: slots(service))
                }
                do {
                    try store.apply(.upsertService(service), revision: revision)
                    #expect(!taken, "accepted \(service.key) though one of its slots is taken")
                    model[service.key] = service
                } catch is InvalidStateError {
                    #expect(taken, "refused \(service.key) though its slots are free")
                }
            }
        }
        #expect(store.services.count == model.count)
        for (key, service) in model { #expect(store.services[key] == service) }
    }

    private func slots(_ service: MirroredService) -> [String] {
        service.ips.flatMap { ip in service.ports.map { "\(ip):\($0.port)/\($0.protocol.rawValue)" } }
    }
}
