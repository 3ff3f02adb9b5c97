import ArgumentParser
import Logging
import NIOCore
import MirrorModel
import MirrorFeed

/// `run`'s flags for following a remote mirror feed (`--feed https://…`).
struct FeedClientOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Directory where the last applied feed state is kept, so a restart while the feed is down still serves it.", valueName: "dir"))
    var stateDir: String?

    @Option(help: ArgumentHelp("This agent's client certificate (PEM) presented to the feed.", valueName: "file"))
    var tlsCert: String?

    @Option(help: ArgumentHelp("The private key (PEM) of --tls-cert.", valueName: "file"))
    var tlsKey: String?

    @Option(help: ArgumentHelp("CA bundle (PEM) the feed server's certificate must chain to.", valueName: "file"))
    var ca: String?

    @Flag(help: "Allow a plain http:// feed: the mirror state is then neither encrypted nor authenticated. For tests and labs only.")
    var insecure = false

    @Option(help: ArgumentHelp("Seconds without any byte (the feed bookmarks every few seconds) before the connection is dropped and retried.", valueName: "seconds"))
    var feedSilenceTimeout: Int = 15

    @Option(help: ArgumentHelp("Longest wait between reconnect attempts while the feed is unreachable (the wait starts at 250 ms and doubles, with jitter, up to this).", valueName: "seconds"))
    var feedMaxBackoff: Int = 30

    /// The endpoint when `feed` is an http(s) URL, nil for other sources (file:).
    /// - Throws: `ValidationError` when the URL or the TLS flags do not fit together.
    func endpoint(for feed: String) throws -> FeedEndpoint? {
        let lowered = feed.lowercased()
        guard lowered.hasPrefix("http://") || lowered.hasPrefix("https://") else { return nil }
        let endpoint: FeedEndpoint
        do {
            endpoint = try FeedEndpoint(url: feed)
        } catch {
            throw ValidationError("--feed: \(error)")
        }
        switch endpoint.scheme {
        case .http:
            guard insecure else {
                throw ValidationError("--feed \(feed) is plain HTTP; use https:// with --tls-cert/--tls-key/--ca, or add --insecure to accept an unauthenticated feed")
            }
            guard tlsCert == nil, tlsKey == nil, ca == nil else {
                throw ValidationError("--tls-cert/--tls-key/--ca need an https:// feed, not \(feed)")
            }
        case .https:
            guard !insecure else { throw ValidationError("--insecure applies to http:// feeds only; \(feed) uses TLS") }
            guard tlsCert != nil, tlsKey != nil, ca != nil else {
                throw ValidationError("--feed \(feed) needs --tls-cert, --tls-key and --ca (the feed requires a client certificate)")
            }
        }
        guard feedSilenceTimeout > 0 else { throw ValidationError("--feed-silence-timeout must be at least 1 second") }
        guard feedMaxBackoff > 0 else { throw ValidationError("--feed-max-backoff must be at least 1 second") }
        return endpoint
    }

    /// The feed client for `feed`, or nil when `feed` is not an http(s) URL.
    /// `link` is told when the feed stream comes up or goes down (network feeds only).
    func makeSource(feed: String, link: FeedLinkRecorder? = nil, logger: Logger) throws -> FeedClient? {
        guard let configuration = try clientConfiguration(feed: feed, link: link, logger: logger) else { return nil }
        return FeedClient(configuration: configuration, logger: logger)
    }

    /// The feed client's configuration for an http(s) `feed`, or nil for other sources.
    private func clientConfiguration(feed: String, link: FeedLinkRecorder?, logger: Logger) throws -> FeedClient.Configuration? {
        guard let endpoint = try endpoint(for: feed) else { return nil }
        var tls: FeedTLSFiles?
        if let tlsCert, let tlsKey, let ca { tls = FeedTLSFiles(certificate: tlsCert, key: tlsKey, ca: ca) }
        if tls == nil {
            logger.warning("following a plain-HTTP feed (--insecure): the mirror state is neither encrypted nor authenticated", metadata: ["feed": "\(feed)"])
        }
        if stateDir == nil {
            logger.notice("no --state-dir: after a restart nothing is served until the feed answers")
        }
        var configuration = FeedClient.Configuration(endpoint: endpoint, tls: tls, stateDirectory: stateDir)
        // Loaded here (unusable files stop the start) and followed: read again before each
        // connection, so a rotated client certificate is used from the next reconnect on.
        configuration.tlsMaterial = try tls.map { try TLSReloader(files: $0, side: .client, logger: logger) }
        configuration.silenceTimeout = .seconds(Int64(feedSilenceTimeout))
        configuration.maxBackoff = .seconds(feedMaxBackoff)
        if let link { configuration.onLinkChange = { link.record($0) } }
        return configuration
    }
}

extension FeedClientOptions {
    /// The exports source for a network `feed` (the gateway's), or nil for other sources.
    func makeExportsSource(feed: String, gatewayPorts: GatewayPortRange, link: FeedLinkRecorder,
                           onRejected: @escaping @Sendable (String) -> Void, logger: Logger) throws -> ExportsFeedClient? {
        guard let configuration = try clientConfiguration(feed: feed, link: link, logger: logger) else { return nil }
        return ExportsFeedClient(configuration: configuration, gatewayPorts: gatewayPorts, onRejected: onRejected, logger: logger)
    }
}
