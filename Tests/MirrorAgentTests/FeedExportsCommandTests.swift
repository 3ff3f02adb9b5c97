import Foundation
import Testing

/// `mirror-agent feed --exports kubernetes`'s flags, as an operator meets them: each mistake
/// refused before anything starts, with a message naming the flag.
@Suite struct FeedExportsCommandTests {
    static let kube = ["--source", "kubernetes", "--exports", "kubernetes"]

    @Test(arguments: [
        (["--source", "file:examples/two-clusters.yaml", "--exports", "kube"], "--exports kube: expected kubernetes or file:PATH"),
        (["--source", "file:examples/two-clusters.yaml", "--exports", "kubernetes"], "--exports kubernetes needs --source kubernetes"),
        (["--source", "file:examples/two-clusters.yaml", "--cluster-name", "paris"], "--cluster-name applies to --exports kubernetes only"),
        (["--source", "kubernetes", "--gateway-address", "192.0.2.1"], "--gateway-address applies to --exports kubernetes only"),
        (kube + ["--gateway-address", "192.0.2.1"], "--exports kubernetes needs --cluster-name"),
        (kube + ["--cluster-name", "paris"], "--exports kubernetes needs --gateway-address"),
        (kube + ["--cluster-name", "Paris", "--gateway-address", "192.0.2.1"], "cluster name \"Paris\" is not a DNS label"),
        (kube + ["--cluster-name", "paris", "--gateway-address", "gw.example"], "gateway address \"gw.example\" is not an IP address"),
        (kube + ["--cluster-name", "paris", "--gateway-address", "192.0.2.1", "--gateway-port-range", "30000-20000"],
         "--gateway-port-range 30000-20000: expected FROM-TO"),
        (kube + ["--cluster-name", "paris", "--gateway-address", "192.0.2.1", "--export-selector", "a in b"],
         "--export-selector a in b:"),
    ])
    func badFlagsAreRefused(arguments: [String], message: String) throws {
        let result = try AgentProcess.run(["feed", "--insecure", "--listen", "127.0.0.1:0", "--admin-socket", Self.socket()] + arguments)
        #expect(result.status != 0, "\(arguments) accepted")
        #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
    }

    @Test func helpExplainsTheKubernetesExports() throws {
        let result = try AgentProcess.run(["feed", "--help"])
        #expect(result.status == 0)
        for text in ["--exports", "--cluster-name", "--gateway-address", "--gateway-port-range", "--export-selector",
                     "--gateway-ports-configmap", "mirror-agent.io/gateway-ports"] {
            #expect(result.stdout.contains(text), "help mentions \(text)")
        }
    }

    static func socket() -> String { NSTemporaryDirectory() + "feed-test-\(UUID().uuidString.prefix(8)).sock" }
}
