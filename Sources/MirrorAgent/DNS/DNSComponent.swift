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
    /// One listen address and the server bound to it (one per address, so each has its own
    /// counters), all answering from the same table on the same threads.
    struct Listener: Sendable {
        var address: SocketAddress
        /// A cluster DNS address answered in transparent mode (`--intercept-cluster-dns`).
        var intercepted: Bool
        var server: DNSServer
    }

    private var listeners: [Listener] = []
    private let group: MultiThreadedEventLoopGroup
    private let configuration: DNSServerConfiguration
    private let ttl: UInt32
    private let logger: Logger
    private var table: DNSRecordTable?
    /// Names contributed by more than one service at the last full build.
    private var sharedNames: Set<DNSName> = []
    /// Each cluster's gateway address families at the last update (nil: not known), which
    /// the A/AAAA of its dual-stack gateway-mode services follow.
    private var gatewayFamilies: [String: AddressFamilies]?

    private init(group: MultiThreadedEventLoopGroup, configuration: DNSServerConfiguration, ttl: UInt32, logger: Logger) {
        self.group = group
        self.configuration = configuration
        self.ttl = ttl
        self.logger = logger
    }

    /// Binds the DNS listeners on `addresses`; nil when DNS is disabled.
    ///
    /// With `initial`, the listeners open already holding its records: during a rolling
    /// restart the new agent shares the port (SO_REUSEPORT) and must never answer a mirrored
    /// name from an empty table (it would forward it, and the upstream says NXDOMAIN).
    /// Without, they open with no mirrored name at all and forward every query.
    /// `prebuilt`: the table for `initial`, already built by ``buildTable(_:ttl:)`` (so the
    /// agent can build it while nftables is being programmed).
    static func start(options: DNSOptions, addresses: [SocketAddress], initial: MirrorUpdate? = nil,
                      prebuilt: (DNSRecordTable, Set<DNSName>)? = nil, logger: Logger) async throws -> DNSComponent? {
        guard !options.disabled else { return nil }
        let configuration = DNSServerConfiguration(listen: addresses, access: try options.accessList(),
                                                   forwarding: DNSForwardingConfiguration(upstreams: try options.upstreamAddresses()),
                                                   udpReading: options.udpReading)
        var table: DNSRecordTable
        var shared: Set<DNSName> = []
        if let prebuilt {
            (table, shared) = prebuilt
        } else {
            let clock = ContinuousClock()
            let started = clock.now
            (table, shared) = try Self.buildTable(initial?.store ?? MirrorStore(), ttl: options.ttl)
            if let initial {
                logger.info("DNS records built", metadata: ["revision": "\(initial.store.revision)", "names": "\(table.nameCount)",
                                                            "bytes": "\(table.byteCount)", "took": "\(clock.now - started)"])
            }
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: options.threadCount)
        let component = DNSComponent(group: group, configuration: configuration, ttl: options.ttl, logger: logger)
        await component.adopt(table, sharedNames: shared)
        do {
            try await component.open(addresses, intercepted: false)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        return component
    }

    /// Binds more listeners (the intercepted cluster DNS addresses, once a state is known),
    /// answering from the current table. All or nothing: on failure none stays open.
    func open(_ addresses: [SocketAddress], intercepted: Bool) async throws {
        var opened: [Listener] = []
        do {
            for address in addresses {
                var configuration = self.configuration
                configuration.listen = [address]
                let server = try await DNSServer.start(configuration: configuration, table: table, group: group,
                                                       sharing: (listeners + opened).first?.server, logger: logger)
                for bound in server.localAddresses {
                    opened.append(Listener(address: bound, intercepted: intercepted, server: server))
                }
            }
        } catch {
            for listener in opened { await listener.server.close() }
            throw error
        }
        listeners += opened
    }

    /// Query counters since start, over every listener.
    func statistics() async -> DNSStatistics {
        var total = DNSStatistics()
        var seen = Set<ObjectIdentifier>()
        for listener in listeners where seen.insert(ObjectIdentifier(listener.server)).inserted {
            let part = await listener.server.statistics()
            total.add(part)
            // Shared by every listener's server.
            total.upstreams = part.upstreams
            total.listeners.append(DNSListenerStatistics(address: "\(listener.address)", intercepted: listener.intercepted,
                                                         queries: part.queries))
        }
        return total
    }

    /// Queries answered per listen address.
    func statisticsByListener() async -> [(address: SocketAddress, intercepted: Bool, statistics: DNSStatistics)] {
        var result: [(address: SocketAddress, intercepted: Bool, statistics: DNSStatistics)] = []
        for listener in listeners { result.append((listener.address, listener.intercepted, await listener.server.statistics())) }
        return result
    }

    /// Closes the listeners: the kernel then steers new queries to the other agent sharing
    /// the port (rolling restart), or — for an intercepted address — back to the cluster DNS.
    func close() async {
        for listener in listeners { await listener.server.close() }
    }

    /// Hands new UDP queries to the port's other sockets, answers the queued ones for
    /// `drain`, then closes (see ``DNSServer/beginDrain()``).
    func close(draining drain: Duration) async {
        for listener in listeners { listener.server.beginDrain() }
        try? await Task.sleep(for: drain)
        await close()
    }

    /// The bound addresses (ports resolved).
    var localAddresses: [SocketAddress] { listeners.map(\.address) }

    private func adopt(_ table: DNSRecordTable, sharedNames: Set<DNSName>) {
        self.table = table
        self.sharedNames = sharedNames
        for listener in listeners { listener.server.replaceTable(table) }
    }

    /// Replaces the table with one built for `update`'s whole state (the first state after
    /// answering with none).
    func rebuild(_ update: MirrorUpdate) throws {
        let (next, shared) = try Self.buildTable(update.store, ttl: ttl)
        adopt(next, sharedNames: shared)
        logger.info("DNS records loaded", metadata: ["revision": "\(update.store.revision)", "names": "\(next.nameCount)"])
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
        for listener in listeners { listener.server.replaceTable(next) }
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
