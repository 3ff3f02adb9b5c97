import ArgumentParser
import Logging
import Sync

/// `mirror-agent run`: the node agent (DNS + nftables, driven by the feed).
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the node agent: answer DNS for mirrored names and program nftables.",
        discussion: """
            Follows the mirror state given by --feed and keeps the DNS responder and the \
            kernel's nftables in step with it. Invalid state is logged and ignored: the last \
            good state stays in force.

            Example (DNS only, no root needed):
              mirror-agent run --feed file:examples/two-clusters.yaml --no-nftables \\
                --dns-listen 127.0.0.1:5353 --upstream 127.0.0.1:53
            """
    )

    @Option(help: ArgumentHelp("Where the mirror state comes from: https://HOST:PORT (a mirror feed), http://HOST:PORT (with --insecure), or file:PATH (a state file, reloaded when it changes).", valueName: "source"))
    var feed: String?

    @OptionGroup(title: "Feed client")
    var feedClient: FeedClientOptions

    @OptionGroup(title: "DNS")
    var dns: DNSOptions

    @OptionGroup(title: "nftables")
    var rules: RulesOptions

    @OptionGroup(title: "Logging")
    var logging: LoggingOptions

    func validate() throws {
        if rules.cleanup { return }
        guard let feed else { throw ValidationError("--feed is required: https://HOST:PORT, http://HOST:PORT or file:PATH") }
        if try feedClient.endpoint(for: feed) == nil { _ = try sourceLocation() }
    }

    private func sourceLocation() throws -> String {
        guard let feed, feed.hasPrefix("file:"), feed.count > 5 else {
            throw ValidationError("--feed \(feed ?? "(missing)"): expected https://HOST:PORT, http://HOST:PORT or file:PATH")
        }
        return String(feed.dropFirst(5))
    }

    func run() async throws {
        let logger = logging.makeLogger(label: "mirror-agent.run")
        if try await rules.runOneShot(statePath: try? sourceLocation(), logger: logger) { return }
        guard let feed else { throw ValidationError("--feed is required") }
        let consumers: [any MirrorConsumer] = [
            try rules.makeConsumer(logger: logger),
            try await DNSComponent.start(options: dns, logger: logger),
        ].compactMap { $0 }
        let source = try feedClient.makeSource(feed: feed, logger: logger) ?? FileMirrorSource(path: try sourceLocation(), logger: logger)
        try await source.run { update in
            for consumer in consumers {
                do {
                    try await consumer.apply(update)
                } catch {
                    logger.error("failed to apply mirror state; keeping the previous one", metadata: ["revision": "\(update.store.revision)", "error": "\(error)"])
                }
            }
        }
    }
}
