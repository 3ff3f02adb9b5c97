import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import MirrorModel

/// The gateway's ``ExportsSource`` on a mirror feed: follows `/v1/exports` with the feed
/// client's TLS, silence detection and backoff, resumes by epoch and revision, and persists the
/// last document so a restart while the feed is down still programs it.
///
/// Every snapshot is validated against the gateway's port range before it is handed on; an
/// invalid one is reported through `onRejected`, the connection is dropped, and the last good
/// document stays in force.
public struct ExportsFeedClient: ExportsSource {
    public let configuration: FeedClient.Configuration
    private let gatewayPorts: GatewayPortRange
    private let onRejected: (@Sendable (String) -> Void)?
    private let group: any EventLoopGroup
    private let logger: Logger

    public init(configuration: FeedClient.Configuration, gatewayPorts: GatewayPortRange,
                onRejected: (@Sendable (String) -> Void)? = nil,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) {
        self.configuration = configuration
        self.gatewayPorts = gatewayPorts
        self.onRejected = onRejected
        self.group = group
        self.logger = logger
    }

    public var description: String { "feed:\(configuration.endpoint)\(ExportsEvent.path)" }

    /// What the client holds: the document and where it came from.
    struct Held: Codable, Equatable {
        var epoch: String
        var revision: UInt64
        var exports: ExportsDocument
    }

    public func run(onUpdate: @escaping @Sendable (ExportsDocument) async -> Void) async throws {
        switch (configuration.endpoint.scheme, configuration.tls) {
        case (.https, nil): throw FeedClientError.configuration("\(configuration.endpoint) needs a client certificate, key and CA bundle")
        case (.http, _?): throw FeedClientError.configuration("\(configuration.endpoint) is plain HTTP; TLS files need an https:// feed")
        default: break
        }
        let material = try configuration.clientMaterial(logger: logger)
        let file = configuration.stateDirectory.map { ($0 as NSString).appendingPathComponent("exports-state.json") }
        var held = restore(file)
        if let held {
            logger.info("programming the persisted exports until the feed answers", metadata: ["revision": "\(held.revision)", "file": "\(file ?? "")"])
            await onUpdate(held.exports)
        }
        var backoff = ReconnectBackoff(initial: configuration.initialBackoff, maximum: configuration.maxBackoff)
        while !Task.isCancelled {
            var started = false
            material?.reload()
            do {
                try await stream(held: &held, started: &started, tls: material?.context, onUpdate: onUpdate, persistTo: file)
                throw FeedClientError.streamEnded
            } catch where Task.isCancelled {
                break
            } catch {
                let error = configuration.explain(error)
                configuration.onLinkChange?(.lost(reason: "\(error)"))
                logger.warning("exports feed connection lost; keeping the last exports", metadata: [
                    "feed": "\(configuration.endpoint)", "revision": "\(held?.revision ?? 0)", "error": "\(error)",
                ])
            }
            do { try await Task.sleep(for: backoff.next(afterStreamStarted: started)) } catch { break }
        }
    }

    /// One connection: snapshot or resume, then snapshots and bookmarks until it fails.
    private func stream(held: inout Held?, started: inout Bool, tls: NIOSSLContext?,
                        onUpdate: @escaping @Sendable (ExportsDocument) async -> Void, persistTo file: String?) async throws {
        let channel = try await FeedConnection(configuration: configuration, tls: tls, group: group).connect()
        let request = FeedWatchRequest(since: held?.revision, epoch: held?.epoch)
        try await channel.executeThenClose { inbound, outbound in
            var headers = HTTPHeaders()
            headers.add(name: "host", value: configuration.endpoint.authority)
            headers.add(name: "accept", value: FeedWatchRequest.contentType)
            headers.add(name: "user-agent", value: "mirror-agent-gateway")
            try await FeedConnection.send(HTTPRequestHead(version: .http1_1, method: .GET, uri: request.target(path: ExportsEvent.path), headers: headers),
                                          outbound: outbound, inbound: inbound)
            var splitter = FeedLineSplitter(limit: configuration.lineLimit)
            for try await part in inbound {
                switch part {
                case .head(let head):
                    guard head.status == .ok else { throw FeedClientError.httpStatus(Int(head.status.code), head.status.reasonPhrase) }
                    configuration.onLinkChange?(.established)
                case .body(let bytes):
                    splitter.append(bytes)
                    while let line = try splitter.nextLine() {
                        let before = held.map { ($0.epoch, $0.revision) }
                        if let document = try apply(ExportsEvent.decode(line: line), to: &held, started: &started) {
                            await onUpdate(document)
                        }
                        // A snapshot of an unchanged document still moves the position a
                        // restart resumes from (a restarted feed has a new epoch).
                        if let file, let held, before.map({ $0 != (held.epoch, held.revision) }) ?? true { persist(held, to: file) }
                    }
                case .end:
                    throw FeedClientError.streamEnded
                }
            }
        }
    }

    /// Applies one event; returns a new valid document to program, if any.
    func apply(_ event: ExportsEvent, to held: inout Held?, started: inout Bool) throws -> ExportsDocument? {
        switch event {
        case let .snapshot(epoch, revision, exports):
            let document: ExportsDocument
            do {
                document = try exports.validated(gatewayPorts: gatewayPorts)
            } catch {
                onRejected?("\(error)")
                throw error
            }
            let changed = held?.exports != document
            held = Held(epoch: epoch, revision: revision, exports: document)
            started = true
            return changed ? document : nil
        case let .resumed(epoch, revision):
            guard !started, let current = held, current.epoch == epoch, current.revision == revision else {
                throw FeedProtocolError.badResume("server resumed \(epoch)@\(revision), client holds \(held.map { "\($0.epoch)@\($0.revision)" } ?? "nothing")")
            }
            started = true
            return nil
        case let .bookmark(revision):
            guard started, revision == held?.revision else {
                throw FeedProtocolError.outOfOrder(expected: held?.revision ?? 0, received: revision, event: "bookmark")
            }
            return nil
        }
    }

    private func restore(_ file: String?) -> Held? {
        guard let file, let data = FileManager.default.contents(atPath: file) else { return nil }
        do {
            var held = try JSONDecoder().decode(Held.self, from: data)
            held.exports = try held.exports.validated(gatewayPorts: gatewayPorts)
            return held
        } catch {
            logger.warning("ignoring the persisted exports", metadata: ["file": "\(file)", "error": "\(error)"])
            return nil
        }
    }

    private func persist(_ held: Held, to file: String) {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            try encoder.encode(held).withUnsafeBytes { try FeedStateFile.writeDurably($0, to: file) }
        } catch {
            logger.error("could not persist the exports", metadata: ["file": "\(file)", "error": "\(error)"])
        }
    }
}
