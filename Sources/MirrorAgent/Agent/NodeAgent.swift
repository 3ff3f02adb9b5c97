import Foundation
import Logging
import NIOCore
import Netlink
import Sync

/// The running node agent: hands every mirror update to its parts (nftables first, so a new
/// name is never answered before its ClusterIP is routed), records what happened for `dump`,
/// and owns the node-level plumbing (the DNS interface and addresses).
final class NodeAgent: Sendable {
    /// A named part of the agent, for logs and `dump`.
    struct Part: Sendable {
        var name: String
        var consumer: any MirrorConsumer
    }

    let board: StatusBoard
    private let parts: [Part]
    private let logger: Logger

    init(source: String, parts: [Part], allParts: [String], logger: Logger) {
        self.parts = parts
        self.logger = logger
        let enabled = Set(parts.map(\.name))
        board = StatusBoard(source: source, parts: Dictionary(uniqueKeysWithValues: allParts.map { ($0, enabled.contains($0)) }))
    }

    /// Applies one update to every part. A part that fails keeps its previous state (each
    /// consumer guarantees that) and the failure is logged and counted; the others go on.
    func handle(_ update: MirrorUpdate) async {
        for part in parts {
            let start = ContinuousClock.now
            var failure: (any Error)?
            do {
                try await part.consumer.apply(update)
            } catch {
                failure = error
                logger.error("\(part.name): failed to apply the mirror state; the previous one stays in force",
                             metadata: ["revision": "\(update.store.revision)", "error": "\(error)"])
            }
            await board.recordSync(part: part.name, duration: ContinuousClock.now - start, error: failure)
        }
        await board.recordUpdate(update.store)
    }

    /// Creates the dummy interface and puts the DNS listener addresses on it, so pods reach
    /// the agent at a fixed link-local address (as with NodeLocal DNSCache).
    static func setUpDNSInterface(_ name: String, addresses: [String], logger: Logger) throws {
        guard !addresses.isEmpty else { return }
        let links = try RouteLinks()
        try links.ensureDummyLink(name)
        for address in addresses {
            try links.ensureAddress(address, on: name)
        }
        logger.info("DNS interface ready", metadata: ["interface": "\(name)", "addresses": "\(addresses.joined(separator: ", "))"])
    }

    /// Removes what `setUpDNSInterface` created (`--cleanup-on-exit`).
    static func tearDownDNSInterface(_ name: String, logger: Logger) {
        do {
            try RouteLinks().deleteLink(name)
            logger.info("removed DNS interface", metadata: ["interface": "\(name)"])
        } catch {
            logger.error("could not remove DNS interface", metadata: ["interface": "\(name)", "error": "\(error)"])
        }
    }
}
