import ArgumentParser

/// The `mirror-agent` executable: one binary for the node agent, the feed server and the
/// operator's tools.
@main
struct MirrorAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mirror-agent",
        abstract: "Node agent for multicluster service mirroring: answers DNS for mirrored services and programs nftables for their ClusterIPs.",
        discussion: """
            A service `bar` exported by cluster `paris` is mirrored here as \
            bar-paris.<namespace>.svc.<cluster-domain>. Every node runs `mirror-agent run`, which \
            follows one mirror feed (`mirror-agent feed`) and keeps DNS and nftables in step with it.

            Start with `mirror-agent check --state FILE` to validate a state file.
            """,
        version: "0.1.0",
        subcommands: [Run.self, Gateway.self, Feed.self, Dump.self, Check.self, Link.self]
    )
}
