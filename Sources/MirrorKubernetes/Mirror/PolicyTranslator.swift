import MirrorModel

/// What the policy translation reads: the local cluster's TrafficSplits, Services and the
/// apex services' EndpointSlices, and the mirror state just translated (the mirrors a split
/// may name).
public struct PolicyInput: Sendable {
    public var trafficSplits: [TrafficSplit]
    /// Local Services; the apex services are looked up among them (others are ignored).
    public var localServices: [KubeService]
    /// Local EndpointSlices (at least those of the apex services).
    public var localEndpointSlices: [KubeEndpointSlice]
    /// The translated mirror state, without policies: its services are the mirrors a
    /// backend may name; the policies must validate against it.
    public var state: MirrorState

    public init(trafficSplits: [TrafficSplit], localServices: [KubeService], localEndpointSlices: [KubeEndpointSlice],
                state: MirrorState) {
        self.trafficSplits = trafficSplits
        self.localServices = localServices
        self.localEndpointSlices = localEndpointSlices
        self.state = state
    }
}

/// The policies made of the TrafficSplits (sorted by key, each validating against the input
/// state) and the splits, or parts of splits, left out.
public struct PolicyTranslation: Sendable, Equatable {
    public var policies: [TrafficPolicy]
    public var skipped: [PolicySkip]

    public init(policies: [TrafficPolicy] = [], skipped: [PolicySkip] = []) {
        self.policies = policies
        self.skipped = skipped
    }
}

/// A TrafficSplit (or a port of its apex service) the policy translation left out, and why.
public struct PolicySkip: Sendable, Hashable, CustomStringConvertible {
    /// `namespace/name` of the TrafficSplit.
    public var trafficSplit: String
    public var reason: Reason

    public init(trafficSplit: String, reason: Reason) {
        self.trafficSplit = trafficSplit
        self.reason = reason
    }

    public var description: String { "TrafficSplit \(trafficSplit): \(reason)" }

    /// An `Error` only so a name lookup can return it as a `Result`'s failure.
    public enum Reason: Error, Sendable, Hashable, CustomStringConvertible {
        /// The split's name or namespace is not a DNS label.
        case invalidName
        /// `spec.service` is missing or not a service name.
        case invalidApex(String)
        /// `spec.service` is the FQDN of a service in another namespace.
        case apexInOtherNamespace(String)
        /// `spec.matches`: the split applies to some HTTP requests only, which L4 cannot tell.
        case httpMatches
        /// No local Service of the apex's name in the split's namespace.
        case apexMissing(String)
        case apexBeingDeleted(String)
        /// The apex is one of the mirror Services (a policy is for a local service).
        case apexIsMirror(String)
        /// ExternalName, or headless: no ClusterIP to split.
        case apexWithoutClusterIP(String)
        /// A port of the apex Service the agent cannot split (protocol); left out of the policy.
        case portLeftOut(service: String, port: String, why: String)
        /// No port of the apex Service is left.
        case noPorts(String)
        case noBackends
        /// A backend without `service`, or whose name is not a service name of the namespace.
        case invalidBackend(String)
        case duplicateBackend(String)
        /// A weight that is missing, not an integer, negative or beyond 2^31-1.
        case invalidWeight(service: String, weight: String)
        case weightsAllZero
        /// A backend that is neither the apex nor a mirror the state holds in the namespace.
        case notMirrored(String)
        /// A mirror without one of the apex's ports (number and protocol).
        case mirrorLacksPort(mirror: String, port: String)
        /// A failover split whose primary is not the apex: only the local service fails over.
        case primaryNotApex(primary: String, apex: String)
        /// Another TrafficSplit (the first by name) already sets the apex service's policy.
        case duplicateApex(service: String, kept: String)
        /// The state model rejected the policy anyway (a safety net; should not happen).
        case invalidState(String)

        public var description: String {
            switch self {
            case .invalidName: "name or namespace is not a DNS label"
            case .invalidApex(let text): "spec.service \"\(text)\" is not a service name"
            case .apexInOtherNamespace(let text): "spec.service \"\(text)\" is a service of another namespace"
            case .httpMatches: "spec.matches (HTTP route groups) cannot be applied to connections; the split is not applied"
            case .apexMissing(let service): "apex Service \(service) does not exist"
            case .apexBeingDeleted(let service): "apex Service \(service) is being deleted"
            case .apexIsMirror(let service): "apex Service \(service) is a mirror Service, not a local one"
            case .apexWithoutClusterIP(let service): "apex Service \(service) has no ClusterIP (headless or ExternalName)"
            case .portLeftOut(let service, let port, let why): "port \(port) of Service \(service) left out: \(why)"
            case .noPorts(let service): "apex Service \(service) has no port to split (TCP, UDP, SCTP)"
            case .noBackends: "spec.backends is empty"
            case .invalidBackend(let text): "backend \"\(text)\" is not a service name of the namespace"
            case .duplicateBackend(let name): "backend \(name) is listed twice"
            case .invalidWeight(let service, let weight): "backend \(service): weight \(weight) is not an integer in 0...2147483647"
            case .weightsAllZero: "every backend weight is 0"
            case .notMirrored(let name): "backend \(name) is not a mirrored service here (no Link mirrors it, or it is not exported)"
            case .mirrorLacksPort(let mirror, let port): "mirror \(mirror) has no port \(port)"
            case .primaryNotApex(let primary, let apex): "failover primary \(primary) is not the apex service \(apex) (only the local service fails over)"
            case .duplicateApex(let service, let kept): "TrafficSplit \(kept) already sets the policy of \(service)"
            case .invalidState(let issue): "rejected by the state model: \(issue)"
            }
        }
    }
}

/// The pure translation from SMI TrafficSplits to the mirror state's traffic policies, read
/// the way Linkerd reads them, so existing Linkerd configurations carry over:
///
/// - The apex `spec.service` is a local Service of the split's namespace (a name, or its
///   FQDN `name.namespace.svc.…`): the policy's ClusterIPs and ports are that Service's
///   (ports of other protocols than TCP, UDP and SCTP are left out and reported).
/// - A backend naming the apex is the local backend (its share stays with kube-proxy);
///   every other backend must be a mirror of the same namespace in the state (`bar-paris`,
///   `bar-federated`) carrying every policy port (same number and protocol).
/// - Weights: SMI weights are relative integers with no fixed total. They are scaled to a
///   total of exactly 1000 by largest remainder: each backend gets ⌊w·1000/Σw⌋, and the
///   units still missing go one each to the largest remainders (ties: the earlier backend in
///   spec order). So 90/10 → 900/100, 1/1/1 → 334/333/333, and a weight below 1/1000 of
///   the total (with larger remainders elsewhere) may become 0.
/// - Failover: a split labelled `failover.linkerd.io/controlled-by` (Linkerd's failover
///   operator's selector; `linkerd-failover` by default) names its primary with
///   `failover.linkerd.io/primary-service`, else its first backend, as the operator does. The
///   primary must be the apex: the local backend gets all the weight (1000, the operator's
///   "primary ready" state; the operator rewrites the weights, so they are not read), and the
///   other backends, in spec order, are the failover list. When the local service has no
///   ready endpoint the agent sends everything to the first failover mirror whose cluster is
///   alive (the operator would spread it over every ready secondary instead).
/// - `localReady`: the apex has at least one ready endpoint in the local EndpointSlices
///   labelled `kubernetes.io/service-name: <apex>`.
/// - A split with `spec.matches` (HTTP route groups) is not applied: at L4 it would
///   send every connection where the split only means some requests.
///
/// Whatever cannot be used is in ``PolicyTranslation/skipped``, naming the TrafficSplit; the
/// policies produced always validate against the input state.
public enum PolicyTranslator {
    /// The local backend's weight in a failover split (all of it, while the local pods are ready).
    static let totalWeight = 1000

    public static func translate(_ input: PolicyInput) -> PolicyTranslation {
        var result = PolicyTranslation()
        let apexes = Set(input.trafficSplits.compactMap(apexKey))
        let services = Dictionary(input.localServices.lazy.filter { apexes.contains($0.key) }.map { ($0.key, $0) },
                                  uniquingKeysWith: { first, _ in first })
        let mirrors = Dictionary(input.state.services.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        var ready = Set<String>()
        for slice in input.localEndpointSlices {
            guard let name = slice.serviceName, let namespace = slice.metadata.namespace, apexes.contains("\(namespace)/\(name)"),
                  slice.endpoints.contains(where: { $0.isReady && !$0.addresses.isEmpty }) else { continue }
            ready.insert("\(namespace)/\(name)")
        }
        var owners: [PolicyKey: String] = [:]
        for split in input.trafficSplits.sorted(by: { $0.key < $1.key }) {
            var skips: [PolicySkip] = []
            let policy = translate(split, services: services, mirrors: mirrors, ready: ready, skips: &skips)
            result.skipped += skips
            guard let policy else { continue }
            if let kept = owners[policy.key] {
                result.skipped.append(PolicySkip(trafficSplit: split.key,
                                                 reason: .duplicateApex(service: policy.key.description, kept: kept)))
                continue
            }
            owners[policy.key] = split.key
            result.policies.append(policy)
        }
        result.policies.sort { $0.key < $1.key }
        return enforceValidity(result, state: input.state, owners: owners)
    }

    /// `namespace/name` of the split's apex service, nil when unusable.
    public static func apexKey(_ split: TrafficSplit) -> String? {
        guard let namespace = split.metadata.namespace, case .success(let name) = serviceName(split.spec.service, namespace: namespace)
        else { return nil }
        return "\(namespace)/\(name)"
    }

    // MARK: - One split

    static func translate(_ split: TrafficSplit, services: [String: KubeService], mirrors: [ServiceKey: MirroredService],
                          ready: Set<String>, skips: inout [PolicySkip]) -> TrafficPolicy? {
        func skip(_ reason: PolicySkip.Reason) -> TrafficPolicy? {
            skips.append(PolicySkip(trafficSplit: split.key, reason: reason))
            return nil
        }
        guard let namespace = split.metadata.namespace, DNSLabel.isValid(namespace), DNSLabel.isValid(split.metadata.name) else {
            return skip(.invalidName)
        }
        let apex: String
        switch serviceName(split.spec.service, namespace: namespace) {
        case .success(let name): apex = name
        case .failure(let reason): return skip(reason)
        }
        if let matches = split.spec.matches, !matches.isEmpty { return skip(.httpMatches) }
        let apexKey = "\(namespace)/\(apex)"
        guard let service = services[apexKey] else { return skip(.apexMissing(apexKey)) }
        if service.metadata.deletionTimestamp != nil { return skip(.apexBeingDeleted(apexKey)) }
        if service.metadata.labels?[MirrorTranslator.mirroredServiceLabel] == "true"
            || mirrors[ServiceKey(namespace: namespace, mirroredName: apex)] != nil {
            return skip(.apexIsMirror(apexKey))
        }
        var ips: [String] = []
        if service.spec.type != "ExternalName" {
            for text in service.spec.allocatedClusterIPs {
                if let ip = IPAddressText.canonical(text)?.text, !ips.contains(ip) { ips.append(ip) }
            }
        }
        guard !ips.isEmpty else { return skip(.apexWithoutClusterIP(apexKey)) }
        let ports = policyPorts(service, object: apexKey, split: split.key, skips: &skips)
        guard !ports.isEmpty else { return skip(.noPorts(apexKey)) }

        // The backends: the apex (local) or mirrors of the namespace carrying every port.
        guard !split.spec.backends.isEmpty else { return skip(.noBackends) }
        var names: [String] = []
        for backend in split.spec.backends {
            guard case .success(let name) = serviceName(backend.service, namespace: namespace) else {
                return skip(.invalidBackend(backend.service ?? ""))
            }
            if names.contains(name) { return skip(.duplicateBackend(name)) }
            names.append(name)
            guard name != apex else { continue }
            guard let mirror = mirrors[ServiceKey(namespace: namespace, mirroredName: name)] else {
                return skip(.notMirrored(name))
            }
            for port in ports where !mirror.ports.contains(where: { $0.port == port.port && $0.protocol == port.protocol }) {
                return skip(.mirrorLacksPort(mirror: name, port: "\(port.port)/\(port.protocol.rawValue)"))
            }
        }

        var backends: [PolicyBackend] = []
        var failover: [String] = []
        if split.isFailoverControlled {
            let primary = split.failoverPrimaryService.map { serviceName($0, namespace: namespace) }
            guard case .success(apex) = primary else {
                return skip(.primaryNotApex(primary: split.failoverPrimaryService ?? "", apex: apex))
            }
            backends.append(PolicyBackend(mirror: nil, weight: totalWeight))
            for name in names where name != apex {
                backends.append(PolicyBackend(mirror: name, weight: 0))
                failover.append(name)
            }
        } else {
            var weights: [Int] = []
            for (backend, name) in zip(split.spec.backends, names) {
                guard let weight = backend.weight, (0...Int(Int32.max)).contains(weight) else {
                    return skip(.invalidWeight(service: name, weight: backend.weight.map(String.init) ?? backend.weightText ?? "(missing)"))
                }
                weights.append(weight)
            }
            guard let scaled = scale(weights) else { return skip(.weightsAllZero) }
            for (name, weight) in zip(names, scaled) {
                backends.append(PolicyBackend(mirror: name == apex ? nil : name, weight: weight))
            }
        }
        return TrafficPolicy(name: apex, namespace: namespace, ips: ips, ports: ports, backends: backends, failover: failover,
                             localReady: ready.contains(apexKey))
    }

    // MARK: - Parts

    /// Relative weights scaled to a total of exactly 1000 by largest remainder (see the type's
    /// documentation); nil when they are all 0 (or there are none).
    static func scale(_ weights: [Int]) -> [Int]? {
        let total = weights.reduce(0, +)
        guard total > 0 else { return nil }
        var scaled = weights.map { $0 * totalWeight / total }
        let remainders = weights.map { $0 * totalWeight % total }
        let missing = totalWeight - scaled.reduce(0, +)
        let order = weights.indices.sorted { remainders[$0] != remainders[$1] ? remainders[$0] > remainders[$1] : $0 < $1 }
        for index in order.prefix(missing) { scaled[index] += 1 }
        return scaled
    }

    /// A backend's or apex's service name: a DNS label, or the FQDN of a service of the
    /// split's namespace (`name.namespace`, `name.namespace.svc`, `name.namespace.svc.<domain>`).
    static func serviceName(_ text: String?, namespace: String) -> Result<String, PolicySkip.Reason> {
        guard let text, !text.isEmpty else { return .failure(.invalidApex(text ?? "")) }
        let labels = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard let name = labels.first, DNSLabel.isValid(name), labels.allSatisfy({ !$0.isEmpty }) else {
            return .failure(.invalidApex(text))
        }
        if labels.count >= 2 {
            guard labels[1] == namespace else { return .failure(.apexInOtherNamespace(text)) }
            if labels.count >= 3, labels[2] != "svc" { return .failure(.invalidApex(text)) }
        }
        return .success(name)
    }

    /// The apex Service's ports a policy can carry; the others are reported.
    static func policyPorts(_ service: KubeService, object: String, split: String, skips: inout [PolicySkip]) -> [PolicyPort] {
        var ports: [PolicyPort] = []
        for port in service.spec.ports ?? [] {
            let label = port.name.flatMap { $0.isEmpty ? nil : $0 } ?? String(port.port)
            let protoText = port.protocol ?? "TCP"
            guard let proto = L4Protocol(rawValue: protoText) else {
                skips.append(PolicySkip(trafficSplit: split, reason: .portLeftOut(service: object, port: label,
                                                                                  why: "protocol \(protoText) is not supported")))
                continue
            }
            guard (1...65535).contains(port.port) else {
                skips.append(PolicySkip(trafficSplit: split, reason: .portLeftOut(service: object, port: label,
                                                                                  why: "\(port.port) is not a port number")))
                continue
            }
            guard !ports.contains(where: { $0.port == port.port && $0.protocol == proto }) else { continue }
            var name = port.name.flatMap { $0.isEmpty ? nil : $0 }
            if let text = name, !DNSLabel.isValidPortName(text) || ports.contains(where: { $0.name == text }) { name = nil }
            ports.append(PolicyPort(name: name, protocol: proto, port: port.port))
        }
        return ports
    }

    /// The safety net: policies the state model still rejects (a ClusterIP a mirror also
    /// uses, …) are removed and reported, until the state validates.
    static func enforceValidity(_ translation: PolicyTranslation, state: MirrorState, owners: [PolicyKey: String]) -> PolicyTranslation {
        // No policy, nothing to check: the state itself was checked by the mirror translation
        // (validating it twice more cost a tenth of the feed's CPU per change).
        guard !translation.policies.isEmpty else { return translation }
        var result = translation
        let baseline = Set(state.validationIssues().map(\.description))
        for _ in 0..<8 {
            var candidate = state
            candidate.policies = result.policies
            let issues = candidate.validationIssues().filter { !baseline.contains($0.description) }
            guard !issues.isEmpty else { return result }
            var drop = Set<Int>()
            for issue in issues {
                guard let index = policyIndex(issue.object), result.policies.indices.contains(index) else { continue }
                if drop.insert(index).inserted {
                    let key = result.policies[index].key
                    result.skipped.append(PolicySkip(trafficSplit: owners[key] ?? key.description, reason: .invalidState(issue.description)))
                }
            }
            if drop.isEmpty {
                // Not attributable to one policy (should not happen): keep none.
                for policy in result.policies {
                    result.skipped.append(PolicySkip(trafficSplit: owners[policy.key] ?? policy.key.description,
                                                     reason: .invalidState(issues.map(\.description).joined(separator: "; "))))
                }
                result.policies = []
                return result
            }
            result.policies = result.policies.enumerated().filter { !drop.contains($0.offset) }.map(\.element)
        }
        return result
    }

    /// `N` of an issue's object `policies[N] …`.
    static func policyIndex(_ object: String) -> Int? {
        guard object.hasPrefix("policies["), let close = object.firstIndex(of: "]") else { return nil }
        return Int(object[object.index(object.startIndex, offsetBy: 9)..<close])
    }
}
