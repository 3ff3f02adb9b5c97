import ArgumentParser

/// `mirror-agent feed`: serve one cluster's mirror state to every node's agent.
struct Feed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the mirror feed (snapshot, then deltas) that node agents follow.",
        discussion: "Not built yet."
    )

    func run() async throws {
        printError("mirror-agent feed: not built yet")
        throw ExitCode(2)
    }
}
