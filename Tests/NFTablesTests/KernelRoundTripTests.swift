import Foundation
import Testing
@testable import NFTables

/// Program a layout into a fresh namespace, read it back with the agent's reader and with
/// `nft -j list table`, and compare element by element.
@Suite(.serialized) struct KernelRoundTripTests {
    static func sampleRules() -> [ServicePortRule] {
        func ip(_ text: String) -> IPAddress { IPAddress(text)! }
        return [
            ServicePortRule(service: "default/bar-paris", proto: 6, port: 80, addresses: [ip("10.112.0.10"), ip("fd00:112::10")],
                            targets: [.init(address: ip("10.99.1.2"), port: 4143, masquerade: true),
                                      .init(address: ip("fd00:99:1::2"), port: 4143, masquerade: true)]),
            ServicePortRule(service: "default/web-federated", proto: 6, port: 80, addresses: [ip("10.112.0.12"), ip("fd00:112::12")],
                            targets: [.init(address: ip("10.20.1.5"), port: 8080), .init(address: ip("10.30.1.5"), port: 8080),
                                      .init(address: ip("fd00:20::5"), port: 8080), .init(address: ip("fd00:30::5"), port: 8080)]),
            ServicePortRule(service: "default/dead-berlin", proto: 17, port: 53, addresses: [ip("10.112.0.13"), ip("fd00:112::13")], targets: []),
        ]
    }

    @Test func programsAndReadsBack() throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let namespace = try TestNamespace("roundtrip")
        let backend = Unchecked(try namespace.run { try KernelRulesetBackend() })
        let layout = MirrorTables(rules: Self.sampleRules(), dnsAddresses: [IPAddress("169.254.20.10")!])
        let reconciler = Reconciler(backend: backend.value, tables: MirrorTables.tableIDs)
        let first = try reconciler.reconcile(layout.desired)
        #expect(first.summary.tablesAdded == 2)

        let snapshot = try backend.value.read(MirrorTables.tableIDs)
        for id in MirrorTables.tableIDs {
            let have = try #require(snapshot.ruleset[id])
            let want = try #require(layout.desired[id])
            #expect(have.chains == want.chains, "chains of \(id)")
            #expect(have.sets == want.sets, "sets of \(id)")
            #expect(have.rules == want.rules, "rules of \(id)")
            #expect(have.elements == want.elements, "elements of \(id)")
        }
        let counted = MirrorTables.dnatMaps.reduce(0) { $0 + (snapshot.counters[MirrorTables.tableIDs[0]]?[$1]?.count ?? 0) }
        #expect(counted == 1, "one single-target slot has a counter")

        let again = try reconciler.reconcile(layout.desired)
        #expect(again.isEmpty, "re-applying the same state must send nothing, sent: \(again)")
    }
}

extension KernelRoundTripTests {
    @Test func matchesNftJSON() throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let namespace = try TestNamespace("json")
        let backend = Unchecked(try namespace.run { try KernelRulesetBackend() })
        let layout = MirrorTables(rules: Self.sampleRules(), dnsAddresses: [IPAddress("169.254.20.10")!, IPAddress("fd00::53")!])
        try Reconciler(backend: backend.value, tables: MirrorTables.tableIDs).reconcile(layout.desired)
        for id in MirrorTables.tableIDs {
            var json = try NFTJSON(namespace.exec(["nft", "-j", "list", "table", id.family.rawValue, id.name]))
            let want = try #require(layout.desired[id])
            let expected = NFTJSON.expected(want)
            // The reconcile marker sits beside the desired sets, in the first table only.
            let markerSet = "set \(ReconcileMarker.setName)"
            let markers = json.elements.filter { $0.hasPrefix("\(ReconcileMarker.setName): ") }
            #expect(json.sets.contains(markerSet) == (id == MirrorTables.tableIDs[0]), "marker set in \(id): \(json.sets)")
            #expect(markers.count == (id == MirrorTables.tableIDs[0] ? 1 : 0), "one marker element in \(id): \(markers)")
            #expect(markers.allSatisfy { $0.contains("# generation ") }, "\(markers)")
            json.sets.remove(markerSet)
            json.elements.subtract(markers)
            #expect(json.elements == expected.elements, "elements of \(id): nft has \(json.elements.subtracting(expected.elements)), missing \(expected.elements.subtracting(json.elements))")
            #expect(json.chains == expected.chains, "chains of \(id)")
            #expect(json.sets == Set(want.sets.values.map { "\($0.isMap ? "map" : "set") \($0.name)" }))
            for (chain, rules) in want.rules {
                #expect(json.ruleComments[chain, default: []] == rules.map(\.storedComment), "rules of \(chain)")
            }
        }
        // The text form nft prints names the lookups as an operator would write them.
        let text = try namespace.exec(["nft", "list", "ruleset"])
        #expect(text.contains("ip daddr & 0.0.0.15 == 0.0.0.10 dnat ip to ip daddr . meta l4proto . th dport map @service-dnat-10"), "\(text)")
        #expect(text.contains("dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 2 map @balance-targets"), "\(text)")
        #expect(text.contains("dnat ip6 to ip6 daddr . meta l4proto . th dport . numgen random mod 2 map @balance-targets"), "\(text)")
        #expect(text.contains("10.112.0.12 . tcp . 80 counter packets 0 bytes 0 comment \"default/web-federated\" : goto balance-2"), "\(text)")
    }
}
