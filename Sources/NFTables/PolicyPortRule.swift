/// How new connections to one ClusterIP:port of a *local* service are split by a traffic
/// policy: between the local service (kube-proxy's own rules, which run after the agent's) and
/// the targets of mirrored services, by weight. The plain value the agent translates its
/// policies into (docs/architecture.md "nftables layout"); NFTables knows nothing else of
/// policies.
///
/// The weights become slots (``slots(for:)``): `numgen random mod N` picks slot k per new
/// connection; a slot is either local (no element: the agent's chain ends, kube-proxy's chain
/// at a later priority DNATs to a local pod) or one target (DNAT).
public struct PolicyPortRule: Hashable, Sendable {
    /// The policy, `namespace/name` (`default/web`); in comments and counters.
    public var policy: String
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP).
    public var proto: UInt8
    public var port: UInt16
    /// The local service's ClusterIPs (IPv4 and/or IPv6).
    public var addresses: [IPAddress]
    /// Where connections may go, in the policy's order. Backends with weight 0, and mirrors
    /// without targets of a ClusterIP's family, get no slots; when none is left, everything
    /// is local.
    public var backends: [Backend]

    /// One way out of the split.
    public struct Backend: Hashable, Sendable {
        /// `local`, or the mirrored service's name (`web-paris`): the per-backend counters'
        /// label.
        public var name: String
        /// Relative weight (0 … 1000 in the policy; anything ≥ 0 works here).
        public var weight: Int
        /// The mirror's live targets, as that mirror's own service rule has them; nil for the
        /// local service.
        public var targets: [ServicePortRule.Target]?

        public init(name: String, weight: Int, targets: [ServicePortRule.Target]?) {
            self.name = name
            self.weight = weight
            self.targets = targets
        }

        /// The local service: connections fall through to kube-proxy.
        public static func local(weight: Int) -> Backend { Backend(name: PolicyPortRule.localBackend, weight: weight, targets: nil) }

        /// A mirrored service's targets.
        public static func mirror(_ name: String, weight: Int, targets: [ServicePortRule.Target]) -> Backend {
            Backend(name: name, weight: weight, targets: targets)
        }

        public var isLocal: Bool { targets == nil }
    }

    /// The label of the local backend.
    public static let localBackend = "local"

    public init(policy: String, proto: UInt8, port: UInt16, addresses: [IPAddress], backends: [Backend]) {
        self.policy = policy
        self.proto = proto
        self.port = port
        self.addresses = addresses
        self.backends = backends
    }

    /// Unique per policy port: `default/web/tcp/80`.
    public var id: String { "\(policy)/\(protocolName(proto))/\(port)" }

    /// `tcp/80`
    public var portName: String { "\(protocolName(proto))/\(port)" }

    /// The comment of the elements counting `backend`'s connections on this port:
    /// `policy default/web tcp/80 web-paris`. Never a service name (those have no spaces), so
    /// the per-comment totals of the agent's tables keep services and policies apart.
    public func counterComment(backend: String) -> String { "policy \(policy) \(portName) \(backend)" }

    /// What a counter comment made by ``counterComment(backend:)`` names; nil for any other
    /// comment (a service's).
    public static func counterLabel(_ comment: String) -> (policy: String, port: String, backend: String)? {
        let parts = comment.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "policy" else { return nil }
        return (String(parts[1]), String(parts[2]), String(parts[3]))
    }

    /// The slots for this port's ClusterIPs of `family`.
    public func slots(for family: Family) -> PolicySlots {
        PolicySlots(backends: backends.map { backend in
            guard let targets = backend.targets else { return backend }
            var own = targets.filter { $0.address.family == family }
            if own.count > 1 { own = Array(Set(own)).sorted() }
            return Backend(name: backend.name, weight: backend.weight, targets: own)
        })
    }
}

/// A policy port's weights as slots: `numgen random mod count` picks one per new connection.
///
/// Slots `0 ..< remote.count` DNAT to a target (the agent's `policy-slots` map holds them);
/// the rest are local (no element: the lookup misses and the connection falls through to
/// kube-proxy). Remote slots come first, so a weight change that keeps a mirror's slots keeps
/// their elements (and counters) too.
///
/// Rounding (`count` ≤ 1000, always one of ``MirrorTables/policySlotCounts``, so every change
/// of weights or targets only changes elements):
/// - exact when possible: each backend's weight is split evenly over its targets (the local
///   service is one recipient), made whole numbers (the least common multiple of the target
///   counts) and reduced by their greatest common divisor; 90/10 to one gateway is 10 slots,
///   9 local and 1 remote; to two gateway addresses 20 slots, 18 local and 1 per address;
/// - when that count is not a standing one (1 … 16 or a divisor of 1000), shares are rounded
///   to thousandths: first per backend (largest remainder, ties to the earlier backend, and
///   a backend with weight > 0 keeps at least one thousandth), so each backend is within half
///   a thousandth of its weight; then a mirror's thousandths over its targets evenly (the
///   first targets, in address order, get one more when they do not divide; a mirror with
///   fewer thousandths than targets uses only its first targets); then reduced by their
///   greatest common divisor, which leaves a divisor of 1000.
public struct PolicySlots: Hashable, Sendable {
    /// The modulus: slots in all.
    public private(set) var count: Int
    /// The remote slots, slot k = `remote[k]`.
    public private(set) var remote: [Slot]
    /// Whether the slots give every recipient its exact share (else rounded to thousandths).
    public private(set) var exact: Bool

    public struct Slot: Hashable, Sendable {
        public var backend: String
        public var target: ServicePortRule.Target
    }

    /// Local slots (the rest).
    public var local: Int { count - remote.count }

    /// Slots per backend name (local included when it has any), for reports.
    public var slotsByBackend: [String: Int] {
        var result: [String: Int] = [:]
        for slot in remote { result[slot.backend, default: 0] += 1 }
        if local > 0 { result[PolicyPortRule.localBackend, default: 0] += local }
        return result
    }

    /// The most slots a port may have.
    public static let bound = 1000

    /// - Parameter backends: mirrors' targets already of one family.
    init(backends: [PolicyPortRule.Backend]) {
        // Recipients: the local service once, each target of a live mirror once.
        // Weights beyond a million are taken as a million (no overflow below).
        let live = backends.filter { $0.weight > 0 && ($0.targets.map { !$0.isEmpty } ?? true) }.map {
            PolicyPortRule.Backend(name: $0.name, weight: min($0.weight, 1_000_000), targets: $0.targets)
        }
        guard live.contains(where: { !$0.isLocal }) else {
            count = 1
            remote = []
            exact = true
            return
        }
        if let slots = Self.exactSlots(live) {
            self = slots
        } else {
            self = Self.thousandths(live)
        }
    }

    private init(count: Int, remote: [Slot], exact: Bool) {
        self.count = count
        self.remote = remote
        self.exact = exact
    }

    /// Whether `count` has a standing chain.
    static func isStanding(_ count: Int) -> Bool {
        count >= 1 && (count <= 16 || (count <= bound && bound % count == 0))
    }

    /// Slots with every recipient's exact share, when their count is a standing one.
    private static func exactSlots(_ live: [PolicyPortRule.Backend]) -> PolicySlots? {
        var multiple = 1
        for backend in live {
            guard let targets = backend.targets else { continue }
            multiple = lcm(multiple, targets.count)
            if multiple > bound { return nil }
        }
        // Per recipient: weight · multiple / targets.
        var local = 0
        var perTarget: [(PolicyPortRule.Backend, Int)] = []
        for backend in live {
            let (scaled, overflow) = backend.weight.multipliedReportingOverflow(by: multiple)
            if overflow { return nil }
            if let targets = backend.targets {
                perTarget.append((backend, scaled / targets.count))
            } else {
                local += scaled
            }
        }
        var divisor = local
        for (_, slots) in perTarget { divisor = gcd(divisor, slots) }
        var total = local / divisor
        for (backend, slots) in perTarget {
            total += slots / divisor * (backend.targets?.count ?? 0)
            if total > bound { return nil }
        }
        guard isStanding(total) else { return nil }
        var remote: [Slot] = []
        for (backend, slots) in perTarget {
            for target in backend.targets ?? [] {
                remote += repeatElement(Slot(backend: backend.name, target: target), count: slots / divisor)
            }
        }
        return PolicySlots(count: total, remote: remote, exact: true)
    }

    /// Shares rounded to thousandths (see the type's documentation).
    private static func thousandths(_ live: [PolicyPortRule.Backend]) -> PolicySlots {
        let total = live.reduce(0) { $0 + $1.weight }
        // Largest remainder, with at least one thousandth per backend.
        var shares = live.map { $0.weight * bound / total }
        var order = live.indices.sorted { a, b in
            let ra = live[a].weight * bound % total, rb = live[b].weight * bound % total
            return ra != rb ? ra > rb : a < b
        }
        var left = bound - shares.reduce(0, +)
        for index in order where left > 0 {
            shares[index] += 1
            left -= 1
        }
        for index in shares.indices where shares[index] == 0 {
            // Taken from the largest share (there is one above 1: at most 1000 backends).
            order = shares.indices.sorted { shares[$0] != shares[$1] ? shares[$0] > shares[$1] : $0 > $1 }
            guard shares[order[0]] > 1 else { break }
            shares[order[0]] -= 1
            shares[index] = 1
        }
        // Per recipient, then reduced.
        var local = 0
        var counts: [(backend: String, target: ServicePortRule.Target, slots: Int)] = []
        for (backend, share) in zip(live, shares) {
            guard let targets = backend.targets else {
                local += share
                continue
            }
            for (index, target) in targets.enumerated() {
                let slots = share / targets.count + (index < share % targets.count ? 1 : 0)
                if slots > 0 { counts.append((backend.name, target, slots)) }
            }
        }
        var divisor = local
        for entry in counts { divisor = gcd(divisor, entry.slots) }
        var remote: [Slot] = []
        for entry in counts {
            remote += repeatElement(Slot(backend: entry.backend, target: entry.target), count: entry.slots / divisor)
        }
        return PolicySlots(count: bound / divisor, remote: remote, exact: false)
    }

    private static func gcd(_ a: Int, _ b: Int) -> Int {
        var (x, y) = (a, b)
        while y != 0 { (x, y) = (y, x % y) }
        return x
    }

    private static func lcm(_ a: Int, _ b: Int) -> Int { a / gcd(a, b) * b }
}
