import Foundation
import Testing

@Suite struct CheckCommandTests {
    @Test func exampleStateIsValid() throws {
        let result = try AgentProcess.run(["check", "--state", "examples/two-clusters.yaml"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.contains("examples/two-clusters.yaml: valid"))
        #expect(result.stdout.contains("services:  4 (gateway 2, remote-discovery 1, federated 1)"))
        #expect(result.stdout.contains("clusters:  2"))
        #expect(result.stderr.isEmpty)
    }

    @Test func brokenCopyListsEveryError() throws {
        let example = try String(contentsOf: AgentProcess.repositoryRoot.appendingPathComponent("examples/two-clusters.yaml"), encoding: .utf8)
        let broken = example
            .replacingOccurrences(of: "mode: remote-discovery", with: "mode: flat")
            .replacingOccurrences(of: "cluster: berlin, ready: true", with: "cluster: madrid, ready: true")
            .replacingOccurrences(of: "    masquerade: true\n  - name: berlin", with: "    masquerade: maybe\n  - name: berlin")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("broken-\(UUID().uuidString).yaml")
        try broken.write(to: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: path) }

        let result = try AgentProcess.run(["check", "--state", path.path])
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty, "errors go to stderr only")
        #expect(result.stderr.contains("3 problems"), "\(result.stderr)")
        #expect(result.stderr.contains("clusters[0] paris: masquerade: must be true or false, got a string"))
        #expect(result.stderr.contains("services[2] default/baz-paris: mode: unknown mode \"flat\""))
        #expect(result.stderr.contains("services[3] default/web-federated: endpoints[1].cluster: unknown cluster \"madrid\""))
    }

    @Test func missingFileIsNamed() throws {
        let result = try AgentProcess.run(["check", "--state", "/nonexistent/state.yaml"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("cannot read state file /nonexistent/state.yaml"))
    }

    @Test func helpExplainsEverySubcommand() throws {
        let result = try AgentProcess.run(["--help"])
        #expect(result.status == 0)
        for subcommand in ["run", "gateway", "feed", "dump", "check"] {
            #expect(result.stdout.contains("  \(subcommand) "), "help lists \(subcommand)")
        }
    }
}
