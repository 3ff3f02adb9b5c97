/// IPv4 and/or IPv6: the address families of a set of addresses.
public struct AddressFamilies: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8

    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let v4 = AddressFamilies(rawValue: 1)
    public static let v6 = AddressFamilies(rawValue: 2)
    public static let both: AddressFamilies = [.v4, .v6]

    /// The family of one textual address; empty when `text` is not an IP address (so an
    /// address the rules could not use adds no family either).
    public init(address text: String) {
        switch IPAddressValue(text)?.family {
        case .v4?: self = .v4
        case .v6?: self = .v6
        case nil: self = []
        }
    }

    /// The families of `addresses`; stops reading once both are seen.
    public init(addresses: some Sequence<String>) {
        self = []
        for address in addresses {
            formUnion(AddressFamilies(address: address))
            if self == .both { return }
        }
    }

    /// `v4`, `v6`, `v4+v6` or `none`.
    public var description: String {
        switch self {
        case .both: "v4+v6"
        case .v4: "v4"
        case .v6: "v6"
        default: "none"
        }
    }
}

extension Cluster {
    /// The families of the gateway's addresses, alive or not (empty without a gateway).
    public var gatewayFamilies: AddressFamilies {
        AddressFamilies(addresses: gateway?.addresses ?? [])
    }
}

extension MirrorStore {
    /// Every cluster's ``Cluster/gatewayFamilies``, computed once for a pass over many services.
    public var gatewayFamilies: [String: AddressFamilies] {
        clusters.mapValues(\.gatewayFamilies)
    }

    /// ``MirroredService/advertisedFamilies(gatewayFamilies:)`` of `service` in this store.
    public func advertisedFamilies(of service: MirroredService) -> AddressFamilies {
        service.advertisedFamilies(gatewayFamilies: { self.clusters[$0]?.gatewayFamilies })
    }
}

/// Which address families of a service can carry its traffic: the one rule DNS answers by
/// (A/AAAA only for those families), and the one the rules obey (a ClusterIP only ever goes
/// to targets of its own family; `RulesTranslator`/`MirrorTables`).
///
/// It is structural, not a matter of liveness: the families of the addresses the service's
/// traffic is sent to when they are up, whether they are up now or not.
/// - gateway: the cluster's gateway addresses, alive or dead (a dead gateway keeps its fast
///   refusal, which a client only sees when it is given the address);
/// - remote-discovery and federated: every endpoint IP, ready or not.
/// The live targets the rules program are always a subset of these.
extension MirroredService {
    /// The families of the ClusterIPs.
    public var clusterIPFamilies: AddressFamilies {
        AddressFamilies(addresses: ips)
    }

    /// The families of this service's targets, alive/ready or not (see the extension's
    /// comment). `gatewayFamilies` gives a cluster's gateway families (nil: unknown cluster).
    public func targetFamilies(gatewayFamilies: (String) -> AddressFamilies?) -> AddressFamilies {
        switch mode {
        case .gateway:
            return cluster.flatMap(gatewayFamilies) ?? []
        case .remoteDiscovery, .federated:
            return AddressFamilies(addresses: endpoints.lazy.map(\.ip))
        }
    }

    /// The families whose ClusterIPs DNS gives out: those with targets of their family.
    ///
    /// When no ClusterIP family has a target of its family (no endpoints at all, no gateway
    /// address, or targets only of a family the service has no ClusterIP of), every ClusterIP
    /// is given out, as before this rule: the name keeps resolving and a connection is
    /// refused at once, which tells a client more, and sooner, than a name without
    /// addresses (which resolvers cache as a negative answer, and clients report as an
    /// unknown host). With one family of ClusterIPs that is always that family, so only
    /// dual-stack services look at their targets.
    public func advertisedFamilies(gatewayFamilies: (String) -> AddressFamilies?) -> AddressFamilies {
        let clusterIPs = clusterIPFamilies
        guard clusterIPs == .both else { return clusterIPs }
        let carried = clusterIPs.intersection(targetFamilies(gatewayFamilies: gatewayFamilies))
        return carried.isEmpty ? clusterIPs : carried
    }

    /// ``advertisedFamilies(gatewayFamilies:)`` with every cluster's gateway families at hand
    /// (``MirrorStore/gatewayFamilies``).
    public func advertisedFamilies(gatewayFamilies: [String: AddressFamilies]) -> AddressFamilies {
        advertisedFamilies(gatewayFamilies: { gatewayFamilies[$0] })
    }

    /// ``advertisedFamilies(gatewayFamilies:)`` from the clusters themselves.
    public func advertisedFamilies(clusters: [String: Cluster]) -> AddressFamilies {
        advertisedFamilies(gatewayFamilies: { clusters[$0]?.gatewayFamilies })
    }
}
