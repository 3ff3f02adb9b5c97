import Foundation
import Testing

/// `mirror-agent feed --source kubernetes`'s flags and configuration errors, as an operator
/// meets them: each refused with a message naming the flag, the file or the variable.
@Suite struct FeedKubernetesCommandTests {
    @Test(arguments: [
        (["--source", "kube"], "--source kube: expected kubernetes or file:PATH"),
        (["--source", "file:examples/two-clusters.yaml", "--kubeconfig", "k"], "--kubeconfig applies to --source kubernetes only"),
        (["--source", "file:examples/two-clusters.yaml", "--link-namespace", "x"], "--link-namespace applies to --source kubernetes only"),
        (["--source", "kubernetes", "--context", "prod"], "--context needs --kubeconfig"),
        (["--source", "kubernetes", "--lease-duration", "1"], "--lease-duration must be at least 3 seconds"),
        (["--source", "kubernetes", "--write-qps", "0"], "--write-qps and --write-burst must be positive"),
        (["--source", "kubernetes", "--kubeconfig", "/nonexistent/kubeconfig"], "/nonexistent/kubeconfig"),
    ])
    func badFlagsAreRefused(arguments: [String], message: String) throws {
        let result = try AgentProcess.run(["feed", "--insecure", "--listen", "127.0.0.1:0", "--admin-socket", Self.socket()] + arguments)
        #expect(result.status != 0, "\(arguments) accepted")
        #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
    }

    @Test func outsideAPodWithoutKubeconfigSaysWhatIsMissing() throws {
        let result = try AgentProcess.run(["feed", "--insecure", "--listen", "127.0.0.1:0", "--admin-socket", Self.socket(),
                                           "--source", "kubernetes"], environment: ["KUBERNETES_SERVICE_HOST": ""])
        #expect(result.status != 0)
        #expect(result.stderr.contains("KUBERNETES_SERVICE_HOST is not set"), "\(result.stderr)")
    }

    @Test func kubeconfigErrorsNameTheFileAndTheField() throws {
        let path = NSTemporaryDirectory() + "feed-kubeconfig-\(UUID().uuidString.prefix(8)).yaml"
        try """
            apiVersion: v1
            kind: Config
            clusters: [{name: local, cluster: {server: "http://127.0.0.1:1"}}]
            users: [{name: u, user: {token: t}}]
            contexts: [{name: local, context: {cluster: local, user: u}}]
            current-context: local
            """.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        // Plain HTTP is refused unless asked for (it is for test servers).
        let plain = try AgentProcess.run(["feed", "--insecure", "--listen", "127.0.0.1:0", "--admin-socket", Self.socket(),
                                          "--source", "kubernetes", "--kubeconfig", path])
        #expect(plain.status != 0)
        #expect(plain.stderr.contains("only https is allowed"), "\(plain.stderr)")
        let context = try AgentProcess.run(["feed", "--insecure", "--listen", "127.0.0.1:0", "--admin-socket", Self.socket(),
                                            "--source", "kubernetes", "--kubeconfig", path, "--context", "prod"])
        #expect(context.status != 0)
        #expect(context.stderr.contains("prod"), "\(context.stderr)")
    }

    @Test func helpExplainsTheKubernetesSource() throws {
        let result = try AgentProcess.run(["feed", "--help"])
        #expect(result.status == 0)
        for text in ["--source", "kubernetes", "--kubeconfig", "--context", "--link-namespace", "--write-qps", "--write-burst",
                     "--lease-name", "--initial-sync-timeout", "--http-listen", "--admin-socket", "dump --feed", "Examples:"] {
            #expect(result.stdout.contains(text), "help mentions \(text)")
        }
    }

    static func socket() -> String { NSTemporaryDirectory() + "feed-test-\(UUID().uuidString.prefix(8)).sock" }
}
