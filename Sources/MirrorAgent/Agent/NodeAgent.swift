import CHeapArenas
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import Netlink
import MirrorModel
import MirrorFeed

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

    init(board: StatusBoard, parts: [Part], logger: Logger) {
        self.board = board
        self.parts = parts
        self.logger = logger
    }

    /// Applies one update to every part. A part that fails keeps its previous state (each
    /// consumer guarantees that) and the failure is logged and counted; the others go on.
    /// `merged` is how many source updates the mailbox coalesced into this one.
    func handle(_ update: MirrorUpdate, merged: Int = 1) async {
        if merged > 1 {
            logger.debug("coalesced a burst of mirror updates", metadata: ["updates": "\(merged)", "revision": "\(update.store.revision)"])
        }
        for part in parts { await part.consumer.prepare(update) }
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
        await board.recordUpdate(update.store, merged: merged)
        if Self.isLarge(update) { Self.returnFreedMemory() }
    }

    /// Whether `update` came from a whole state document (a snapshot, a re-read state file)
    /// or changed much of the state: building it used large transient buffers (decoded JSON,
    /// a new store, kernel read-back, the batch) now freed.
    static func isLarge(_ update: MirrorUpdate) -> Bool {
        let changes = update.changes
        return update.rebuilt || changes.clusterDomainChanged
            || changes.addedServices.count + changes.removedServices.count + changes.changedServices.count > 1_000
    }

    /// Hands the heap's free pages back to the kernel: glibc keeps them after a big build, so
    /// the agent's RSS would otherwise stay at its peak for good.
    private static func returnFreedMemory() {
        mirror_agent_trim_heap()
    }

    /// Creates the dummy interface and puts the DNS listener addresses on it, so pods reach
    /// the agent at a fixed link-local address (as with NodeLocal DNSCache). On a kernel
    /// without the `dummy` driver the addresses go on `lo` instead, with a warning.
    ///
    /// - Returns: the interface that carries the addresses.
    @discardableResult
    static func setUpDNSInterface(_ name: String, addresses: [String], logger: Logger) throws -> String {
        guard !addresses.isEmpty else { return name }
        let links = try RouteSocket()
        defer { links.close() }
        var interface = name
        do {
            try links.ensureDummyLink(name)
        } catch let error as RouteError where error.isUnsupported {
            logger.warning("this kernel has no dummy link driver; putting the DNS addresses on lo instead",
                           metadata: ["interface": "\(name)", "error": "\(error)"])
            interface = "lo"
        }
        for address in addresses {
            try links.addAddress(address, to: interface)
        }
        logger.info("DNS interface ready", metadata: ["interface": "\(interface)", "addresses": "\(addresses.joined(separator: ", "))"])
        return interface
    }

    /// Removes what `setUpDNSInterface` created (`--cleanup-on-exit`).
    static func tearDownDNSInterface(_ name: String, addresses: [String], logger: Logger) {
        do {
            let links = try RouteSocket()
            defer { links.close() }
            try links.deleteLink(name)
            for address in addresses { try links.removeAddress(address, from: "lo") }
            logger.info("removed DNS interface and addresses", metadata: ["interface": "\(name)"])
        } catch {
            logger.error("could not remove DNS interface", metadata: ["interface": "\(name)", "error": "\(error)"])
        }
    }
}
