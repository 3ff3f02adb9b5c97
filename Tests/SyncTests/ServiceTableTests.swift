import Testing
@testable import MirrorModel
@testable import MirrorFeed

/// `ServiceTable` must behave like the `[ServiceKey: MirroredService]` it replaced.
@Suite struct ServiceTableTests {
    private func service(_ i: Int, cluster: String? = "paris", mode: MirrorMode = .gateway, port: Int = 80) -> MirroredService {
        MirroredService(name: "svc-\(i % 97)", namespace: "ns-\(i / 97)", cluster: mode == .federated ? nil : cluster, mode: mode,
                        ips: ["10.0.\(i / 256).\(i % 256)"], ports: [ServicePort(port: port)])
    }

    @Test func followsADictionaryThroughInsertsReplacementsAndRemovals() {
        var table = ServiceTable()
        var model: [ServiceKey: MirroredService] = [:]
        var generator = SystemRandomNumberGenerator()
        for step in 0..<6000 {
            let i = Int.random(in: 0..<700, using: &generator)
            let mode: MirrorMode = i % 7 == 0 ? .federated : .gateway
            let candidate = service(i, cluster: i % 3 == 0 ? "berlin" : "paris", mode: mode, port: 80 + step % 5)
            if Int.random(in: 0..<3, using: &generator) == 0 {
                #expect(table.removeValue(forKey: candidate.key) == model.removeValue(forKey: candidate.key))
            } else {
                #expect(table.updateValue(candidate).old == model.updateValue(candidate, forKey: candidate.key))
            }
            if step % 500 == 0 || step == 5999 {
                #expect(table.count == model.count)
                for (key, value) in model { #expect(table[key] == value) }
                #expect(Set(table.keys) == Set(model.keys))
                #expect(Dictionary(uniqueKeysWithValues: table.map { ($0.key, $0.value) }) == model)
            }
        }
    }

    @Test func keysThatOnlyLookAlikeAreDifferent() {
        var table = ServiceTable()
        // "a-b" in cluster "c" and "a" in cluster "b-c" both mirror as "a-b-c": the same key.
        let first = MirroredService(name: "a-b", namespace: "n", cluster: "c", mode: .gateway, ips: ["10.0.0.1"], ports: [])
        let second = MirroredService(name: "a", namespace: "n", cluster: "b-c", mode: .gateway, ips: ["10.0.0.2"], ports: [])
        let federated = MirroredService(name: "a", namespace: "n", mode: .federated, ips: ["10.0.0.3"], ports: [])
        let elsewhere = MirroredService(name: "a-b", namespace: "m", cluster: "c", mode: .gateway, ips: ["10.0.0.4"], ports: [])
        #expect(table.updateValue(first).old == nil)
        #expect(table.updateValue(second).old == first, "same mirrored name, same key")
        #expect(table.updateValue(federated).old == nil)
        #expect(table.updateValue(elsewhere).old == nil)
        #expect(table.count == 3)
        #expect(table[ServiceKey(namespace: "n", mirroredName: "a-b-c")] == second)
        #expect(table[ServiceKey(namespace: "n", mirroredName: "a-federated")] == federated)
        #expect(table[ServiceKey(namespace: "n", mirroredName: "a-b")] == nil)
        #expect(table[ServiceKey(namespace: "nm", mirroredName: "a-b-c")] == nil)
    }

    @Test func equalityIgnoresOrder() {
        var forward = ServiceTable(), backward = ServiceTable()
        for i in 0..<50 { forward.updateValue(service(i)) }
        for i in (0..<50).reversed() { backward.updateValue(service(i)) }
        #expect(forward == backward)
        backward.updateValue(service(3, port: 81))
        #expect(forward != backward)
    }
}
