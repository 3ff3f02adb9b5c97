import Foundation
import Testing

/// `mirror-agent gateway`'s flags, as an operator meets them: refused with a message naming
/// the flag and what was expected, before anything touches the kernel.
@Suite struct GatewayCommandTests {
    static let exports = "file:examples/paris-exports.yaml"

    @Test(arguments: [
        (["--allow-source", "10.0.0.0/8"], "--feed is required"),
        (["--feed", exports], "--allow-source is required"),
        (["--feed", exports, "--allow-source", "10.0.0.0/33"], "--allow-source 10.0.0.0/33: not a CIDR range"),
        (["--feed", exports, "--allow-source", "somewhere"], "--allow-source somewhere: not a CIDR range"),
        (["--feed", exports, "--allow-source", "10.0.0.0/8", "--gateway-port-range", "30000-20000"], "--gateway-port-range 30000-20000: expected FROM-TO"),
        (["--feed", exports, "--allow-source", "10.0.0.0/8", "--probe-listen", "4191"], "--probe-listen 4191: expected ADDRESS:PORT"),
        (["--feed", "ftp://x", "--allow-source", "10.0.0.0/8"], "--feed ftp://x: expected https://HOST:PORT"),
        (["--feed", "https://feed:8443", "--allow-source", "10.0.0.0/8"], "needs --tls-cert, --tls-key and --ca"),
        (["--feed", "http://feed:8443", "--allow-source", "10.0.0.0/8"], "is plain HTTP"),
        (["--feed", exports, "--allow-source", "10.0.0.0/8", "--stale-after", "0"], "--stale-after must be at least 1 second"),
    ])
    func badFlagsAreRefused(arguments: [String], message: String) throws {
        let result = try AgentProcess.run(["gateway"] + arguments)
        #expect(result.status != 0, "\(arguments) accepted")
        #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
    }

    @Test func helpDocumentsEveryFlagWithExamples() throws {
        let result = try AgentProcess.run(["gateway", "--help"])
        #expect(result.status == 0)
        for flag in ["--feed", "--allow-source", "--gateway-port-range", "--probe-listen", "--http-listen", "--stale-after",
                     "--admin-socket", "--drift-check-interval", "--cleanup-on-exit", "--tls-cert", "--state-dir", "Examples:"] {
            #expect(result.stdout.contains(flag), "help mentions \(flag)")
        }
    }
}
