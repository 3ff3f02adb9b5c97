import Foundation
import Testing

/// `run --intercept-cluster-dns` as an operator meets it: flags that would loop or cannot
/// work are refused before anything touches the node.
@Suite struct TransparentDNSCommandTests {
    static let state = "file:examples/two-clusters.yaml"

    @Test(arguments: [
        (["--intercept-cluster-dns", "10.96.0.10", "--upstream", "10.96.0.10:53"], "--upstream 10.96.0.10:53 is intercepted by --intercept-cluster-dns"),
        (["--intercept-cluster-dns", "10.96.0.10", "--upstream", "10.96.0.10"], "is intercepted by --intercept-cluster-dns"),
        (["--intercept-cluster-dns", "fd00::a", "--upstream", "[fd00::a]:53"], "is intercepted by --intercept-cluster-dns"),
        (["--intercept-cluster-dns", "kube-dns", "--upstream", "10.96.0.11:53"], "--intercept-cluster-dns kube-dns: not an IPv4 or IPv6 address"),
        (["--intercept-cluster-dns", "10.96.0.10", "--upstream", "10.96.0.11:53", "--no-nftables"], "--intercept-cluster-dns needs nftables and DNS"),
    ])
    func refused(arguments: [String], message: String) throws {
        let result = try AgentProcess.run(["run", "--feed", Self.state] + arguments)
        #expect(result.status != 0, "\(arguments) accepted")
        #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
    }

    @Test func printRulesetShowsTheSocketGuard() throws {
        let result = try AgentProcess.run(["run", "--feed", Self.state, "--print-ruleset", "--intercept-cluster-dns", "10.96.0.10",
                                           "--upstream", "10.96.0.11:53"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("ip daddr 10.96.0.10 meta l4proto udp th dport 53 socket transparent 0 notrack"), "\(result.stdout)")
        #expect(result.stdout.contains("ip saddr 10.96.0.10 meta l4proto udp th sport 53 notrack"))
    }

    @Test func helpExplainsTransparentMode() throws {
        let result = try AgentProcess.run(["run", "--help"])
        #expect(result.stdout.contains("--intercept-cluster-dns"))
        #expect(result.stdout.contains("169.254.20.11"))
    }
}
