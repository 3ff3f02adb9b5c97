import Foundation
import Testing
@testable import NFTables

/// The transparent-DNS rules (`run --intercept-cluster-dns`) in the kernel: the NOTRACK of
/// queries to the cluster DNS address is guarded by the socket expression; replies are
/// untracked unconditionally; nothing is added for the output hook's queries.
@Suite(.serialized) struct InterceptRulesTests {
    @Test func socketGuardedNotrackProgramsAndReadsBack() throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let namespace = try TestNamespace("intercept")
        let backend = Unchecked(try namespace.run { try KernelRulesetBackend() })
        let layout = MirrorTables(dnsAddresses: [IPAddress("169.254.20.11")!],
                                  interceptedDNS: [IPAddress("10.96.0.10")!, IPAddress("fd00:96::a")!])
        let reconciler = Reconciler(backend: backend.value, tables: MirrorTables.tableIDs)
        try reconciler.reconcile(layout.desired)

        let v4 = try namespace.exec(["nft", "list", "chain", "ip", "mirror-agent", "raw-prerouting"])
        #expect(v4.contains("ip daddr 10.96.0.10 udp dport 53 socket transparent 0 notrack"), "\(v4)")
        #expect(v4.contains("ip daddr 10.96.0.10 tcp dport 53 socket transparent 0 notrack"), "\(v4)")
        // The link-local listener stays unconditional.
        #expect(v4.contains("ip daddr 169.254.20.11 udp dport 53 notrack"), "\(v4)")
        let v6 = try namespace.exec(["nft", "list", "chain", "ip6", "mirror-agent", "raw-prerouting"])
        #expect(v6.contains("ip6 daddr fd00:96::a udp dport 53 socket transparent 0 notrack"), "\(v6)")
        let output = try namespace.exec(["nft", "list", "chain", "ip", "mirror-agent", "raw-output"])
        #expect(output.contains("ip saddr 10.96.0.10 udp dport") == false)
        #expect(output.contains("ip saddr 10.96.0.10 udp sport 53 notrack"), "\(output)")
        #expect(!output.contains("ip daddr 10.96.0.10"), "queries from the node itself are not intercepted: \(output)")

        // Read back by fingerprint: applying the same layout again sends nothing.
        let again = try reconciler.reconcile(layout.desired)
        #expect(again.isEmpty, "sent \(again)")
        // Dropping the interception removes exactly its rules.
        var plain = layout
        let scope = plain.setDNSAddresses([IPAddress("169.254.20.11")!], intercepted: [])
        let removed = try reconciler.update(plain.desired, scope: scope)
        #expect(!removed.isEmpty)
        let after = try namespace.exec(["nft", "list", "chain", "ip", "mirror-agent", "raw-prerouting"])
        #expect(!after.contains("socket"), "\(after)")
        #expect(after.contains("169.254.20.11"))
    }
}
