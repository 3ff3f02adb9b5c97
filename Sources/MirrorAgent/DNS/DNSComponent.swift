import DNSResponder
import Logging
import NIOCore
import NIOPosix
import Sync

/// The DNS responder as a part of the agent: starts the servers, then turns every mirror
/// update into a record table and swaps it in.
///
/// A change to some services patches only the table shards holding their names (the
/// names a service had are recomputed from the previous state). The table is built afresh
/// for the first state, a new cluster domain, or when a touched name is shared by several
/// services (two services on one ClusterIP share its PTR name), since a patch replaces a
/// name's records as a whole. A state that cannot be translated is reported and the
/// previous table keeps answering.
actor DNSComponent: MirrorConsumer {
    private let server: DNSServer
    private let ttl: UInt32
    private let logger: Logger
    private var table: DNSRecordTable?
    private var previous: MirrorStore?
    /// Names contributed by more than one service at the last full build.
    private var sharedNames: Set<DNSName> = []

    private init(server: DNSServer, ttl: UInt32, logger: Logger) {
        self.server = server
        self.ttl = ttl
        self.logger = logger
    }

    /// Binds the DNS listeners described by `options`; nil when DNS is disabled.
    ///
    /// With `initial`, the listeners open already holding its records: during a rolling
    /// restart the new agent shares the port (SO_REUSEPORT) and must never answer a mirrored
    /// name from an empty table (it would forward it, and the upstream says NXDOMAIN).
    static func start(options: DNSOptions, initial: MirrorUpdate? = nil, logger: Logger) async throws -> DNSComponent? {
        guard !options.disabled else { return nil }
        let configuration = DNSServerConfiguration(listen: try options.listenAddresses(), access: try options.accessList(),
                                                   forwarding: DNSForwardingConfiguration(upstreams: try options.upstreamAddresses()))
        var table: DNSRecordTable?
        var shared: Set<DNSName> = []
        if let initial {
            (table, shared) = try Self.buildTable(initial.store, ttl: options.ttl)
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: options.threadCount)
        let server = try await DNSServer.start(configuration: configuration, table: table, group: group, logger: logger)
        let component = DNSComponent(server: server, ttl: options.ttl, logger: logger)
        if let initial, let table { await component.adopt(table, store: initial.store, sharedNames: shared) }
        return component
    }

    /// Query counters since start.
    func statistics() async -> DNSStatistics {
        await server.statistics()
    }

    /// Closes the listeners: the kernel then steers new queries to the other agent sharing
    /// the port (rolling restart) instead of to a process about to exit.
    func close() async {
        await server.close()
    }

    /// The bound addresses (ports resolved).
    nonisolated var localAddresses: [SocketAddress] { server.localAddresses }

    private func adopt(_ table: DNSRecordTable, store: MirrorStore, sharedNames: Set<DNSName>) {
        self.table = table
        self.previous = store
        self.sharedNames = sharedNames
    }

    func apply(_ update: MirrorUpdate) async throws {
        let clock = ContinuousClock()
        let started = clock.now
        let store = update.store
        let next: DNSRecordTable
        let mode: String
        if let table, let previous, !update.changes.clusterDomainChanged,
           let patched = try patch(table, from: previous, to: store, changes: update.changes) {
            next = patched
            mode = "patched"
        } else {
            next = try build(store)
            mode = "built"
        }
        table = next
        previous = store
        server.replaceTable(next)
        logger.info("DNS records updated", metadata: ["revision": "\(store.revision)", "names": "\(next.nameCount)", "table": "\(mode)",
                                                      "took": "\(clock.now - started)"])
    }

    private func build(_ store: MirrorStore) throws -> DNSRecordTable {
        let (table, shared) = try Self.buildTable(store, ttl: ttl)
        sharedNames = shared
        return table
    }

    /// A full table for `store`, and the names several services share (those cannot be
    /// patched one service at a time).
    ///
    /// Each service is translated and encoded on its own, straight into the table's compact
    /// form, so the records of 100k services never exist as one list of names and records.
    /// Services are taken in the store's order (deterministic for a given state).
    private static func buildTable(_ store: MirrorStore, ttl: UInt32) throws -> (DNSRecordTable, Set<DNSName>) {
        var builder = DNSRecordTableBuilder(zones: try DNSRecordTranslator.zones(for: store, ttl: ttl))
        try builder.add(try DNSRecordTranslator.base(for: store, ttl: ttl))
        for (_, service) in store.services {
            try builder.add(try DNSRecordTranslator.fragment(for: service, zone: store.clusterDomain, ttl: ttl))
        }
        let shared = builder.repeatedNames
        return (builder.build(), shared)
    }

    /// The patched table, or nil when the change needs a full build.
    private func patch(_ table: DNSRecordTable, from previous: MirrorStore, to store: MirrorStore, changes: ChangeSet) throws -> DNSRecordTable? {
        var removed: Set<DNSName> = []
        for key in changes.removedServices.union(changes.changedServices) {
            guard let old = previous.services[key] else { continue }
            removed.formUnion(DNSRecordTranslator.names(of: try DNSRecordTranslator.fragment(for: old, zone: previous.clusterDomain, ttl: ttl)))
        }
        var added = DNSTableContent(zones: try DNSRecordTranslator.zones(for: store, ttl: ttl))
        for key in changes.addedServices.union(changes.changedServices) {
            guard let service = store.services[key] else { continue }
            let fragment = try DNSRecordTranslator.fragment(for: service, zone: store.clusterDomain, ttl: ttl)
            added.ownedNames += fragment.ownedNames
            added.records += fragment.records
        }
        let addedNames = Set(DNSRecordTranslator.names(of: added))
        // A name another service also provides cannot be patched one service at a time.
        guard removed.isDisjoint(with: sharedNames),
              addedNames.allSatisfy({ removed.contains($0) || !table.contains($0) }) else { return nil }
        return try table.patched(removing: Array(removed), adding: added)
    }
}
