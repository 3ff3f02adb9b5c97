import ArgumentParser

/// `mirror-agent run`: the node agent (DNS + nftables, driven by the feed).
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the node agent: answer DNS for mirrored names and program nftables.",
        discussion: "Not built yet: the DNS responder, nftables programming and feed client come in later releases."
    )

    func run() async throws {
        printError("mirror-agent run: not built yet")
        throw ExitCode(2)
    }
}
