import DNSResponder
import Logging
import NIOCore
import NIOPosix
import MirrorModel
import MirrorFeed

/// The DNS responder as a part of the agent: starts the servers, then turns every mirror
/// update into a record table and swaps it in.
///
/// A change to some services patches only the table shards holding their names. The names
/// a service had are read back from the table itself (each service is added with its name
/// as the part's head, see ``DNSRecordTableBuilder/add(_:head:)``), so the component keeps
/// no previous ``MirrorStore``: holding one would make the feed copy the whole store at
/// its next delta, and keep two stores alive after a state file is reloaded. The table is built afresh
/// for the first state, a new cluster domain, or when a touched name is shared by several
/// services (two services on one ClusterIP share its PTR name), since a patch replaces a
/// name's records as a whole. A state that cannot be translated is reported and the
/// previous table keeps answering.
actor DNSComponent: MirrorConsumer {
    private let server: DNSServer
    private let ttl: UInt32
    private let logger: Logger
    private var table: DNSRecordTable?
    /// Names contributed by more than one service at the last full build.
    private var sharedNames: Set<DNSName> = []
    /// Each cluster's gateway address families at the last update (nil: not known), which
    /// the A/AAAA of its dual-stack gateway-mode services follow.
    private var gatewayFamilies: [String: AddressFamilies]?

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
    /// `prebuilt`: the table for `initial`, already built by ``buildTable(_:ttl:)`` (so the
    /// agent can build it while nftables is being programmed).
    static func start(options: DNSOptions, initial: MirrorUpdate? = nil, prebuilt: (DNSRecordTable, Set<DNSName>)? = nil,
                      logger: Logger) async throws -> DNSComponent? {
        guard !options.disabled else { return nil }
        let configuration = DNSServerConfiguration(listen: try options.listenAddresses(), access: try options.accessList(),
                                                   forwarding: DNSForwardingConfiguration(upstreams: try options.upstreamAddresses()),
                                                   udpReading: options.udpReading)
        var table: DNSRecordTable?
        var shared: Set<DNSName> = []
        if let prebuilt {
            (table, shared) = prebuilt
        } else if let initial {
            let clock = ContinuousClock()
            let started = clock.now
            (table, shared) = try Self.buildTable(initial.store, ttl: options.ttl)
            logger.info("DNS records built", metadata: ["revision": "\(initial.store.revision)", "names": "\(table?.nameCount ?? 0)",
                                                        "bytes": "\(table?.byteCount ?? 0)", "took": "\(clock.now - started)"])
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: options.threadCount)
        let server = try await DNSServer.start(configuration: configuration, table: table, group: group, logger: logger)
        let component = DNSComponent(server: server, ttl: options.ttl, logger: logger)
        if let table { await component.adopt(table, sharedNames: shared) }
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

    private func adopt(_ table: DNSRecordTable, sharedNames: Set<DNSName>) {
        self.table = table
        self.sharedNames = sharedNames
    }

    func apply(_ update: MirrorUpdate) async throws {
        let clock = ContinuousClock()
        let started = clock.now
        let store = update.store
        // New gateway families of a cluster change the names of its dual-stack gateway-mode
        // services, which the change does not list.
        let families = store.gatewayFamilies
        var changes = update.changes
        changes.changedServices.formUnion(DNSRecordTranslator.servicesRefamilied(by: changes, store: store, before: gatewayFamilies ?? [:],
                                                                                 after: families))
        let next: DNSRecordTable
        let mode: String
        do {
            if let table, !changes.clusterDomainChanged,
               let patched = try Self.patch(table, sharedNames: sharedNames, to: store, changes: changes, ttl: ttl) {
                next = patched
                mode = "patched"
            } else {
                next = try build(store)
                mode = "built"
            }
        } catch {
            // The server keeps answering from the last table, but the next change set is
            // relative to a state that table does not reflect: build the next one whole.
            table = nil
            throw error
        }
        table = next
        gatewayFamilies = families
        server.replaceTable(next)
        logger.info("DNS records updated", metadata: ["revision": "\(store.revision)", "names": "\(next.nameCount)", "table": "\(mode)",
                                                      "bytes": "\(next.byteCount)",
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
    static func buildTable(_ store: MirrorStore, ttl: UInt32) throws -> (DNSRecordTable, Set<DNSName>) {
        // Most services give two names (their own and a PTR).
        var builder = DNSRecordTableBuilder(zones: try DNSRecordTranslator.zones(for: store, ttl: ttl), expectedNames: store.services.count * 2)
        try builder.add(try DNSRecordTranslator.base(for: store, ttl: ttl))
        let gateways = store.gatewayFamilies
        for (_, service) in store.services {
            let fragment = try DNSRecordTranslator.fragment(for: service, zone: store.clusterDomain, gatewayFamilies: gateways, ttl: ttl)
            try builder.add(fragment, head: DNSRecordTranslator.head(of: fragment))
        }
        let shared = builder.repeatedNames
        return (builder.build(), shared)
    }

    /// The patched table, or nil when the change needs a full build: a name several
    /// services give (`sharedNames`, or one two added services both give, such as the PTR
    /// of a ClusterIP they share) needs the records of all of them, which only a build
    /// merges and records as shared.
    ///
    /// The cluster domain is the same as the table's (a new one always rebuilds), so a
    /// service's head name is found from its key alone.
    static func patch(_ table: DNSRecordTable, sharedNames: Set<DNSName>, to store: MirrorStore, changes: ChangeSet,
                      ttl: UInt32) throws -> DNSRecordTable? {
        var removed: [DNSName] = []
        for key in changes.removedServices.union(changes.changedServices) {
            // A service the table does not hold (e.g. its state was rejected at the last build)
            // leaves nothing to remove by head: rebuild.
            guard let names = table.partNames(head: try DNSRecordTranslator.head(of: key, zone: store.clusterDomain)) else { return nil }
            removed += names
        }
        var parts: [DNSTablePart] = []
        var addedNames: Set<DNSName> = []
        let gateways = store.gatewayFamilies
        for key in changes.addedServices.union(changes.changedServices) {
            guard let service = store.services[key] else { continue }
            let fragment = try DNSRecordTranslator.fragment(for: service, zone: store.clusterDomain, gatewayFamilies: gateways, ttl: ttl)
            for name in Set(DNSRecordTranslator.names(of: fragment)) {
                // Given by two of the added services: a build merges their records.
                guard addedNames.insert(name).inserted else { return nil }
            }
            parts.append(DNSTablePart(fragment, head: DNSRecordTranslator.head(of: fragment)))
        }
        let removedSet = Set(removed)
        // A name another service also provides cannot be patched one service at a time.
        guard removedSet.isDisjoint(with: sharedNames),
              addedNames.allSatisfy({ removedSet.contains($0) || !table.contains($0) }) else { return nil }
        return try table.patched(removing: removed, adding: parts, zones: try DNSRecordTranslator.zones(for: store, ttl: ttl))
    }
}
