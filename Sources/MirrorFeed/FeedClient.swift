import Logging
import NIOCore
import NIOPosix
import NIOSSL
import MirrorModel

/// A mirror feed as the agent's ``MirrorSource``: snapshot then deltas, resumed by revision
/// across reconnects, and persisted so a restart while the feed is down still serves the
/// last applied state.
///
/// The connection is dropped and retried (exponential backoff with jitter) when it fails,
/// ends, stays silent past ``Configuration/silenceTimeout`` (the server bookmarks every few
/// seconds), or delivers an event that is malformed, out of order or invalid. Such an event
/// is never applied, even in part: the last good state stays in force.
public struct FeedClient: MirrorSource {
    /// How a client connects and behaves.
    public struct Configuration: Sendable {
        public var endpoint: FeedEndpoint
        /// Client certificate, key and CA bundle; required for https, nil for http.
        public var tls: FeedTLSFiles?
        /// The loaded `tls` files, when the caller follows them too (their expiry in metrics);
        /// built from ``tls`` when nil. Either way they are read again before each connection,
        /// so a rotated client certificate is used from the next reconnect on.
        public var tlsMaterial: TLSReloader?
        /// Where the last applied state is persisted; nil to persist nothing.
        public var stateDirectory: String?
        /// No byte for this long means the connection is dead (several missed bookmarks).
        public var silenceTimeout: TimeAmount = .seconds(15)
        public var connectTimeout: TimeAmount = .seconds(5)
        /// First reconnect delay; doubles per failure up to ``maxBackoff``; jittered.
        public var initialBackoff: Duration = .milliseconds(250)
        public var maxBackoff: Duration = .seconds(30)
        /// Persist at most this often while changes stream in (always on disconnect and exit).
        public var persistInterval: Duration = .seconds(1)
        /// The longest event line accepted (a snapshot of the whole state is one line).
        public var lineLimit = 256 << 20
        /// Told when a watch stream is established and when it is lost, so the agent can show
        /// whether its feed is connected (`mirror-agent dump`, `/metrics`).
        public var onLinkChange: (@Sendable (FeedLinkEvent) -> Void)?

        public init(endpoint: FeedEndpoint, tls: FeedTLSFiles?, stateDirectory: String?) {
            self.endpoint = endpoint
            self.tls = tls
            self.stateDirectory = stateDirectory
        }
    }

    public let configuration: Configuration
    private let group: any EventLoopGroup
    private let logger: Logger

    public init(configuration: Configuration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
    }

    public var description: String { "feed:\(configuration.endpoint)" }

    /// Serves the persisted state (if any) at once, then follows the feed until cancelled.
    ///
    /// - Throws: only for unusable configuration (TLS files); feed outages are retried forever.
    public func run(onUpdate: @escaping @Sendable (MirrorUpdate) async -> Void) async throws {
        switch (configuration.endpoint.scheme, configuration.tls) {
        case (.https, nil): throw FeedClientError.configuration("\(configuration.endpoint) needs a client certificate, key and CA bundle")
        case (.http, _?): throw FeedClientError.configuration("\(configuration.endpoint) is plain HTTP; TLS files need an https:// feed")
        default: break
        }
        let material = try configuration.clientMaterial(logger: logger)
        var applier = FeedApplier()
        let persistence = FeedPersistence(file: configuration.stateDirectory.map(FeedStateFile.init(directory:)),
                                          interval: configuration.persistInterval, logger: logger)
        if let restored = persistence.restore() {
            applier = FeedApplier(store: restored.store, epoch: restored.epoch)
            logger.info("serving the persisted mirror state until the feed answers", metadata: [
                "revision": "\(restored.store.revision)", "services": "\(restored.store.services.count)",
            ])
            await onUpdate(MirrorUpdate(store: restored.store, changes: restored.changes, rebuilt: true))
        }

        var backoff = ReconnectBackoff(initial: configuration.initialBackoff, maximum: configuration.maxBackoff)
        while !Task.isCancelled {
            material?.reload()
            let connection = FeedConnection(configuration: configuration, tls: material?.context, group: group)
            do {
                try await connection.stream(into: &applier, persistence: persistence, onUpdate: onUpdate)
                throw FeedClientError.streamEnded
            } catch where Task.isCancelled {
                break
            } catch {
                let error = configuration.explain(error)
                configuration.onLinkChange?(.lost(reason: "\(error)"))
                logger.warning("feed connection lost; keeping the last applied state", metadata: [
                    "feed": "\(configuration.endpoint)", "revision": "\(applier.store.revision)", "error": "\(error)",
                ])
            }
            await persistence.persistNow(applier)
            do {
                try await Task.sleep(for: backoff.next(afterStreamStarted: applier.streamStarted))
            } catch {
                break
            }
        }
        await persistence.persistNow(applier)
    }
}

extension FeedClient.Configuration {
    /// The client's TLS material: the caller's, or loaded from ``tls``.
    func clientMaterial(logger: Logger) throws -> TLSReloader? {
        if let tlsMaterial { return tlsMaterial }
        return try tls.map { try TLSReloader(files: $0, side: .client, logger: logger) }
    }

    /// A TLS handshake failure, said with the files an operator must look at.
    func explain(_ error: any Error) -> any Error {
        guard let tls, error is NIOSSLError || error is BoringSSLError else { return error }
        return FeedClientError.handshake(endpoint: endpoint.description, reason: "\(error)", files: tls)
    }
}

/// The wait before a feed client reconnects: doubling from `initial` up to `maximum` while
/// connections fail, back to `initial` after a stream that started.
struct ReconnectBackoff {
    let initial: Duration
    let maximum: Duration
    private var current: Duration

    init(initial: Duration, maximum: Duration) {
        self.initial = initial
        self.maximum = maximum
        current = initial
    }

    /// The next wait. "Equal jitter": half of it fixed, half random, so a fleet restarted
    /// together spreads its reconnects.
    mutating func next(afterStreamStarted started: Bool) -> Duration {
        if started { current = initial }
        let delay = current / 2 + current / 2 * Double.random(in: 0...1)
        current = min(current * 2, maximum)
        return delay
    }
}

/// A change of a ``FeedClient``'s link to its feed.
public enum FeedLinkEvent: Sendable, Equatable {
    /// The feed accepted the watch (HTTP 200); events follow.
    case established
    /// The connection failed or ended; the client keeps its state and reconnects.
    case lost(reason: String)
}

/// Why a feed connection ended.
public enum FeedClientError: Error, CustomStringConvertible {
    /// The client is misconfigured; retrying cannot help.
    case configuration(String)
    case connect(address: String, reason: String)
    case httpStatus(Int, String)
    case silent(after: TimeAmount)
    case streamEnded
    case handshake(endpoint: String, reason: String, files: FeedTLSFiles)

    public var description: String {
        switch self {
        case let .configuration(reason): "feed client configuration: \(reason)"
        case let .connect(address, reason): "cannot connect to the feed at \(address): \(reason)"
        case let .httpStatus(code, reason): "feed answered HTTP \(code) \(reason)"
        case let .silent(after): "no data from the feed for \(after.nanoseconds / 1_000_000) ms (missed bookmarks); reconnecting"
        case .streamEnded: "the feed closed the stream"
        case let .handshake(endpoint, reason, files):
            "TLS handshake with the feed at \(endpoint) failed: \(reason). The feed's certificate must chain to a CA in \(files.ca) and name the host dialled; this side's certificate \(files.certificate) must chain to the feed's client CA"
        }
    }
}
