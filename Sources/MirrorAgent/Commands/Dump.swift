import ArgumentParser

/// `mirror-agent dump`: show what a running agent holds and has programmed.
struct Dump: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a running agent's feed, services, DNS and nftables state.",
        discussion: "Not built yet."
    )

    func run() async throws {
        printError("mirror-agent dump: not built yet")
        throw ExitCode(2)
    }
}
