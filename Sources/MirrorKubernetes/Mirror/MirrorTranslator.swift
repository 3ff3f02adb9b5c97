import MirrorModel

/// The pure translation from remote Kubernetes objects (Links, and each remote cluster's
/// Services and EndpointSlices as cached by informers) to the mirror state and to the local
/// mirror Services. No I/O: the controller feeds it what its informers hold.
///
/// Rules:
/// - A Service matching the Link's `remoteDiscoverySelector` is mirrored in remote-discovery
///   mode (its ready endpoint IPs); otherwise one matching `selector` is mirrored in gateway
///   mode. Independently, one matching `federatedServiceSelector` joins `<svc>-federated`
///   (``translateFederated(_:localClusterIPs:)``). A nil selector means Linkerd's default.
/// - Headless remote Services are mirrored like the others: the mirror is a ClusterIP
///   Service here (the state model needs a ClusterIP), and endpoint hostnames are kept so
///   each pod still has its own name in the pod-IP modes. ExternalName Services are skipped.
/// - Nothing odd crashes it: whatever cannot be mirrored is listed in
///   ``MirrorTranslation/skipped`` and the services produced always validate.
public enum MirrorTranslator {
    /// Linkerd's default `selector`: Services mirrored through the gateway.
    public static let defaultSelector = LabelSelector(matchLabels: ["mirror.linkerd.io/exported": "true"])
    /// Linkerd's default `remoteDiscoverySelector`.
    public static let defaultRemoteDiscoverySelector = LabelSelector(matchLabels: ["mirror.linkerd.io/exported": "remote-discovery"])
    /// Linkerd's default `federatedServiceSelector`.
    public static let defaultFederatedServiceSelector = LabelSelector(matchLabels: ["mirror.linkerd.io/federated": "member"])

    /// Labels of every local mirror Service.
    public static let serviceProxyNameLabel = "service.kubernetes.io/service-proxy-name"
    public static let serviceProxyName = "mirror-agent"
    public static let mirroredServiceLabel = "mirror.linkerd.io/mirrored-service"
    public static let clusterNameLabel = "mirror.linkerd.io/cluster-name"

    /// The annotation the exporting side (`mirror-agent gateway`) writes on each exported
    /// remote Service: the gateway port of each service port.
    ///
    /// Format: comma-separated `key=gatewayPort` entries, where `key` is the service port's
    /// name, or `<port>/<PROTOCOL>` (`8125/UDP`), or a bare `<port>` (every protocol of that
    /// port number). Whitespace around entries is ignored. Example:
    /// `mirror-agent.io/gateway-ports: "http=20001,8125/UDP=20002"`.
    /// A port with no entry (or no annotation at all) uses the Link's `gatewayPort`
    /// (``MirroredService`` port's `gatewayPort` stays nil). Unreadable entries, entries
    /// naming no port and ports outside 1–65535 are reported and ignored.
    public static let gatewayPortsAnnotation = "mirror-agent.io/gateway-ports"

    /// A Link annotation: `"true"` says the remote cluster runs `mirror-agent gateway`, which
    /// has no shared port — a gateway-mode port is mirrored only once the exporting side has
    /// written its gateway port (`gatewayPortsAnnotation`); until then it is left out
    /// (reported) rather than sent to the Link's `gatewayPort`, where nothing listens.
    /// `mirror-agent link` sets it.
    public static let gatewayPortsRequiredAnnotation = "mirror-agent.io/gateway-ports-required"

    /// A Link annotation: `"true"` masquerades traffic to that cluster (SNAT to the node's
    /// address), for gateways that only accept the importing cluster's node addresses.
    public static let masqueradeAnnotation = "mirror-agent.io/masquerade"

    /// The key of a mirror Service in the local ClusterIP map: `namespace/<svc>-<cluster>`.
    public static func localKey(namespace: String, mirroredName: String) -> String { "\(namespace)/\(mirroredName)" }

    // MARK: - The whole state

    /// Everything: every Link's cluster and gateway/remote-discovery services, plus the
    /// federated services across all Links. A second Link naming the same cluster is skipped.
    ///
    /// - Parameter localClusterIPs: the ClusterIPs the local API server allocated, by
    ///   `namespace/<mirrored name>` (``localKey(namespace:mirroredName:)``).
    public static func translate(_ inputs: [MirrorLinkInput], localClusterIPs: [String: [String]]) -> MirrorTranslation {
        var result = MirrorTranslation()
        var seen = Set<String>()
        var kept: [MirrorLinkInput] = []
        for input in inputs {
            if let name = input.link.spec.targetClusterName, DNSLabel.isValid(name), !seen.insert(name).inserted {
                result.skipped.append(MirrorSkip(cluster: name, object: "Link \(input.link.key)", reason: .duplicateCluster))
                continue
            }
            kept.append(input)
            result.append(translateLink(input, localClusterIPs: localClusterIPs))
        }
        result.append(translateFederated(kept, localClusterIPs: localClusterIPs))
        result.mirrorServices.sort { $0.key < $1.key }
        return enforceValidity(result)
    }

    // MARK: - One Link

    /// One Link's ``Cluster`` and its gateway-mode and remote-discovery services (not the
    /// federated ones, which span Links).
    public static func translateLink(_ input: MirrorLinkInput, localClusterIPs: [String: [String]]) -> MirrorTranslation {
        var result = MirrorTranslation()
        let spec = input.link.spec
        guard let clusterName = spec.targetClusterName, DNSLabel.isValid(clusterName) else {
            result.skipped.append(MirrorSkip(cluster: nil, object: "Link \(input.link.key)",
                                             reason: .invalidClusterName(spec.targetClusterName ?? "")))
            return result
        }
        var report = Report(cluster: clusterName)
        let cluster = makeCluster(input, name: clusterName, report: &report)
        result.clusters = [cluster]

        let gatewaySelector = selector(spec.selector, default: defaultSelector, link: input.link, report: &report)
        let discoverySelector = selector(spec.remoteDiscoverySelector, default: defaultRemoteDiscoverySelector,
                                         link: input.link, report: &report)
        let slices = slicesByService(input.endpointSlices)
        for service in sortedServices(input.services) {
            let mode: MirrorMode
            if discoverySelector.map({ matches($0, service) }) ?? false {
                mode = .remoteDiscovery
            } else if gatewaySelector.map({ matches($0, service) }) ?? false {
                mode = .gateway
            } else {
                continue
            }
            let object = "Service \(service.key)"
            guard let namespace = checkedIdentity(service, suffix: clusterName, object: object, report: &report) else { continue }
            if mode == .gateway, cluster.gateway == nil {
                report.skip(object, .noGateway)
                continue
            }
            var ports = mirroredPorts(service, object: object, report: &report)
            guard !ports.isEmpty else {
                report.skip(object, .noPorts)
                continue
            }
            let mirroredName = "\(service.metadata.name)-\(clusterName)"
            var endpoints: [Endpoint] = []
            if mode == .gateway {
                applyGatewayPorts(service, to: &ports, object: object, report: &report)
                if input.link.metadata.annotations?[gatewayPortsRequiredAnnotation] == "true" {
                    for port in ports where port.port.gatewayPort == nil {
                        report.skip("\(object) port \(port.port.name ?? "\(port.port.port)/\(port.port.protocol.rawValue)")",
                                    .awaitingGatewayPort)
                    }
                    ports.removeAll { $0.port.gatewayPort == nil }
                    guard !ports.isEmpty else { continue }
                }
            } else {
                let resolved = resolveEndpoints(service, ports: ports, slices: slices[service.key] ?? [], cluster: nil,
                                                object: object, report: &report)
                ports = resolved.ports
                endpoints = resolved.endpoints
                guard !ports.isEmpty else {
                    report.skip(object, .noPorts)
                    continue
                }
            }
            result.mirrorServices.append(mirrorService(namespace: namespace, mirroredName: mirroredName, cluster: clusterName,
                                                       ports: ports.map(\.port)))
            guard let ips = localIPs(namespace: namespace, mirroredName: mirroredName, localClusterIPs: localClusterIPs,
                                     report: &report) else { continue }
            result.services.append(MirroredService(name: service.metadata.name, namespace: namespace, cluster: clusterName,
                                                   mode: mode, ips: ips, ports: ports.map(\.port), endpoints: endpoints))
        }
        result.skipped += report.skips
        return result
    }

    // MARK: - Federated services

    /// The federated services across several Links: every Service matching a Link's
    /// `federatedServiceSelector` joins `<svc>-federated` in its namespace, whose endpoints
    /// are the union of each member cluster's ready endpoints, each naming its cluster.
    ///
    /// The federated service's ports are those of the first member in cluster-name order;
    /// a member whose ports (number, protocol, name, resolved target port) differ
    /// contributes no endpoint and is reported. Only the federated services and their mirror
    /// Services are returned (the clusters come from ``translateLink(_:localClusterIPs:)``).
    public static func translateFederated(_ inputs: [MirrorLinkInput], localClusterIPs: [String: [String]]) -> MirrorTranslation {
        var result = MirrorTranslation()
        // (namespace, name) -> members in cluster-name order
        var members: [ServiceKey: [(cluster: String, ports: [ResolvedPort], endpoints: [Endpoint], object: String)]] = [:]
        var seenClusters = Set<String>()
        let ordered = inputs.compactMap { input -> (String, MirrorLinkInput)? in
            guard let name = input.link.spec.targetClusterName, DNSLabel.isValid(name) else { return nil }
            return (name, input)
        }.sorted { $0.0 < $1.0 }
        for (clusterName, input) in ordered where seenClusters.insert(clusterName).inserted {
            var report = Report(cluster: clusterName)
            guard let federatedSelector = selector(input.link.spec.federatedServiceSelector, default: defaultFederatedServiceSelector,
                                                   link: input.link, report: &report) else {
                result.skipped += report.skips
                continue
            }
            let slices = slicesByService(input.endpointSlices)
            for service in sortedServices(input.services) where matches(federatedSelector, service) {
                let object = "Service \(service.key) (federated member)"
                guard let namespace = checkedIdentity(service, suffix: "federated", object: object, report: &report) else { continue }
                let ports = mirroredPorts(service, object: object, report: &report)
                guard !ports.isEmpty else {
                    report.skip(object, .noPorts)
                    continue
                }
                let resolved = resolveEndpoints(service, ports: ports, slices: slices[service.key] ?? [], cluster: clusterName,
                                                object: object, report: &report)
                guard !resolved.ports.isEmpty else {
                    report.skip(object, .noPorts)
                    continue
                }
                let key = ServiceKey(namespace: namespace, mirroredName: service.metadata.name)
                members[key, default: []].append((clusterName, resolved.ports, resolved.endpoints, object))
            }
            result.skipped += report.skips
        }
        for (key, group) in members.sorted(by: { $0.key < $1.key }) {
            guard let first = group.first else { continue }
            let mirroredName = "\(key.mirroredName)-federated"
            var endpoints: [Endpoint] = []
            var seenIPs = Set<String>()
            for member in group {
                if member.ports.map(\.port) != first.ports.map(\.port) {
                    result.skipped.append(MirrorSkip(cluster: member.cluster, object: member.object, reason: .federatedPortsMismatch))
                    continue
                }
                for endpoint in member.endpoints {
                    if seenIPs.insert(endpoint.ip).inserted {
                        endpoints.append(endpoint)
                    } else {
                        result.skipped.append(MirrorSkip(cluster: member.cluster, object: member.object,
                                                         reason: .duplicateEndpoint(endpoint.ip)))
                    }
                }
            }
            result.mirrorServices.append(mirrorService(namespace: key.namespace, mirroredName: mirroredName, cluster: nil,
                                                       ports: first.ports.map(\.port)))
            var report = Report(cluster: nil)
            guard let ips = localIPs(namespace: key.namespace, mirroredName: mirroredName, localClusterIPs: localClusterIPs,
                                     report: &report) else {
                result.skipped += report.skips
                continue
            }
            result.services.append(MirroredService(name: key.mirroredName, namespace: key.namespace, cluster: nil,
                                                   mode: .federated, ips: ips, ports: first.ports.map(\.port),
                                                   endpoints: endpoints))
        }
        return result
    }

    // MARK: - Mirror Service objects

    /// The local mirror Service: `<mirroredName>` in `namespace`, type ClusterIP, no
    /// selector, the ports as mirrored, labelled for this agent (kube-proxy ignores Services
    /// with a `service-proxy-name`). Federated ones (`cluster` nil) have no cluster label.
    public static func mirrorService(namespace: String, mirroredName: String, cluster: String?,
                                     ports: [ServicePort]) -> KubeService {
        var labels = [serviceProxyNameLabel: serviceProxyName, mirroredServiceLabel: "true"]
        if let cluster { labels[clusterNameLabel] = cluster }
        let kubePorts = ports.map { port in
            KubeServicePort(name: port.name, protocol: port.protocol.rawValue, port: port.port, targetPort: .int(port.port))
        }
        return KubeService(metadata: ObjectMeta(name: mirroredName, namespace: namespace, labels: labels),
                           spec: KubeServiceSpec(type: "ClusterIP", ports: kubePorts))
    }

    /// The mirror Service of a translated service.
    public static func mirrorService(for service: MirroredService) -> KubeService {
        mirrorService(namespace: service.namespace, mirroredName: service.mirroredName, cluster: service.cluster,
                      ports: service.ports)
    }

    // MARK: - Parts

    struct Report {
        var cluster: String?
        var skips: [MirrorSkip] = []

        mutating func skip(_ object: String, _ reason: MirrorSkip.Reason) {
            skips.append(MirrorSkip(cluster: cluster, object: object, reason: reason))
        }
    }

    /// A mirrored port with the remote Service port it came from (for target port resolution).
    struct ResolvedPort: Equatable {
        var port: ServicePort
        var remoteName: String?
        var remoteTarget: IntOrString?
    }

    static func makeCluster(_ input: MirrorLinkInput, name: String, report: inout Report) -> Cluster {
        let spec = input.link.spec
        let object = "Link \(input.link.key)"
        var addresses: [String] = []
        for address in input.gatewayAddresses ?? spec.gatewayAddresses {
            guard let canonical = IPAddressText.canonical(address)?.text else {
                report.skip(object, .invalidGatewayAddress(address))
                continue
            }
            if !addresses.contains(canonical) { addresses.append(canonical) }
        }
        var port = Gateway.defaultPort
        if let text = spec.gatewayPort, !text.isEmpty {
            if let number = spec.gatewayPortNumber { port = number } else { report.skip(object, .invalidGatewayPort(text)) }
        }
        let gateway = addresses.isEmpty ? nil : Gateway(addresses: addresses, port: port, identity: spec.gatewayIdentity,
                                                        alive: input.gatewayAlive)
        return Cluster(name: name, gateway: gateway, masquerade: input.masquerade)
    }

    /// The Link's selector, its default when unset, nil (matching nothing) when it cannot be
    /// evaluated.
    static func selector(_ selector: LabelSelector?, default fallback: LabelSelector, link: LinkerdLink,
                         report: inout Report) -> LabelSelector? {
        let chosen = selector ?? fallback
        do {
            _ = try chosen.matches([:])
            return chosen
        } catch {
            report.skip("Link \(link.key)", .invalidSelector(String(describing: error)))
            return nil
        }
    }

    static func matches(_ selector: LabelSelector, _ service: KubeService) -> Bool {
        (try? selector.matches(service.metadata.labels)) ?? false
    }

    static func sortedServices(_ services: [KubeService]) -> [KubeService] {
        services.sorted { $0.key < $1.key }
    }

    static func slicesByService(_ slices: [KubeEndpointSlice]) -> [String: [KubeEndpointSlice]] {
        var result: [String: [KubeEndpointSlice]] = [:]
        for slice in slices {
            guard let service = slice.serviceName, let namespace = slice.metadata.namespace else { continue }
            result["\(namespace)/\(service)", default: []].append(slice)
        }
        return result.mapValues { $0.sorted { $0.metadata.name < $1.metadata.name } }
    }

    /// The Service's namespace when it can be mirrored as `<name>-<suffix>`.
    static func checkedIdentity(_ service: KubeService, suffix: String, object: String, report: inout Report) -> String? {
        guard let namespace = service.metadata.namespace, DNSLabel.isValid(namespace), DNSLabel.isValid(service.metadata.name) else {
            report.skip(object, .invalidName)
            return nil
        }
        let mirroredName = "\(service.metadata.name)-\(suffix)"
        guard mirroredName.utf8.count <= 63 else {
            report.skip(object, .mirroredNameTooLong(mirroredName))
            return nil
        }
        if service.metadata.deletionTimestamp != nil {
            report.skip(object, .beingDeleted)
            return nil
        }
        if service.spec.type == "ExternalName" {
            report.skip(object, .unsupportedType("ExternalName"))
            return nil
        }
        return namespace
    }

    /// The Service's ports the state can carry, targetPort provisionally the remote
    /// Service's numeric target (or the port).
    static func mirroredPorts(_ service: KubeService, object: String, report: inout Report) -> [ResolvedPort] {
        var result: [ResolvedPort] = []
        for remote in service.spec.ports ?? [] {
            let portObject = "\(object) port \(remote.name ?? String(remote.port))"
            let protoText = remote.protocol ?? "TCP"
            guard let proto = L4Protocol(rawValue: protoText) else {
                report.skip(portObject, .unsupportedProtocol(protoText))
                continue
            }
            guard (1...65535).contains(remote.port) else {
                report.skip(portObject, .invalidPort("port \(remote.port) is out of range"))
                continue
            }
            let name = remote.name.flatMap { $0.isEmpty ? nil : $0 }
            if let name, !DNSLabel.isValidPortName(name) {
                report.skip(portObject, .invalidPort("port name \"\(name)\" is not a valid port name"))
                continue
            }
            if result.contains(where: { $0.port.port == remote.port && $0.port.protocol == proto }) {
                report.skip(portObject, .duplicatePort)
                continue
            }
            if let name, result.contains(where: { $0.port.name == name }) {
                report.skip(portObject, .invalidPort("duplicate port name \"\(name)\""))
                continue
            }
            var target = remote.port
            if case .int(let number) = remote.targetPort, (1...65535).contains(number) { target = number }
            result.append(ResolvedPort(port: ServicePort(name: name, protocol: proto, port: remote.port, targetPort: target),
                                       remoteName: remote.name, remoteTarget: remote.targetPort))
        }
        return result
    }

    /// Sets `gatewayPort` on the ports the Service's gateway-ports annotation names.
    static func applyGatewayPorts(_ service: KubeService, to ports: inout [ResolvedPort], object: String, report: inout Report) {
        guard let text = service.metadata.annotations?[gatewayPortsAnnotation] else { return }
        for rawEntry in text.split(separator: ",") {
            let entry = rawEntry.trimmingSpaces()
            guard !entry.isEmpty else { continue }
            let parts = entry.split(separator: "=", omittingEmptySubsequences: false)
            guard parts.count == 2, let gatewayPort = Int(parts[1].trimmingSpaces()), (1...65535).contains(gatewayPort) else {
                report.skip(object, .invalidGatewayPortsAnnotation("\"\(entry)\" is not key=port"))
                continue
            }
            let key = parts[0].trimmingSpaces()
            let matching: [Int]
            if let number = Int(key) {
                matching = ports.indices.filter { ports[$0].port.port == number }
            } else if let slash = key.firstIndex(of: "/"), let number = Int(key[..<slash]) {
                let proto = L4Protocol(rawValue: String(key[key.index(after: slash)...]).uppercased())
                matching = ports.indices.filter { ports[$0].port.port == number && ports[$0].port.protocol == proto }
            } else {
                matching = ports.indices.filter { ports[$0].port.name == String(key) }
            }
            if matching.isEmpty {
                report.skip(object, .invalidGatewayPortsAnnotation("\"\(entry)\" names no port of the service"))
            }
            for index in matching { ports[index].port.gatewayPort = gatewayPort }
        }
    }

    /// The ready endpoints of the Service's slices and the ports with their target ports
    /// resolved from the slices (by the service port's name, as EndpointSlices name them).
    static func resolveEndpoints(_ service: KubeService, ports: [ResolvedPort], slices: [KubeEndpointSlice], cluster: String?,
                                 object: String, report: inout Report) -> (ports: [ResolvedPort], endpoints: [Endpoint]) {
        // Each usable slice's view of the ports: index in `ports` -> resolved target port.
        func view(of slice: KubeEndpointSlice) -> [Int: Int] {
            var result: [Int: Int] = [:]
            for (index, port) in ports.enumerated() {
                let match = (slice.ports ?? []).first { candidate in
                    (candidate.name ?? "") == (port.remoteName ?? "")
                        && L4Protocol(rawValue: candidate.protocol ?? "TCP") == port.port.protocol
                }
                if let number = match?.port, (1...65535).contains(number) { result[index] = number }
            }
            return result
        }
        var usable: [(slice: KubeEndpointSlice, view: [Int: Int])] = []
        for slice in slices {
            guard slice.addressType == "IPv4" || slice.addressType == "IPv6" else {
                report.skip("EndpointSlice \(slice.key)", .unsupportedAddress(slice.addressType))
                continue
            }
            usable.append((slice, view(of: slice)))
        }
        // The reference: the first slice with a ready endpoint, else the first slice.
        let reference = usable.first { $0.slice.endpoints.contains(where: \.isReady) }?.view ?? usable.first?.view ?? [:]
        var resolved: [ResolvedPort] = []
        var kept: [Int] = []
        for (index, port) in ports.enumerated() {
            var port = port
            if let number = reference[index] {
                port.port.targetPort = number
            } else if case .string(let name) = port.remoteTarget,
                      usable.contains(where: { $0.slice.endpoints.contains(where: \.isReady) }) {
                report.skip("\(object) port \(port.port.name ?? String(port.port.port))", .unresolvedTargetPort(name))
                continue
            }
            resolved.append(port)
            kept.append(index)
        }
        var endpoints: [Endpoint] = []
        var seen = Set<String>()
        for (slice, view) in usable {
            let relevant = kept.filter { view[$0] != nil || reference[$0] != nil }
            if relevant.contains(where: { view[$0] != reference[$0] }) {
                if slice.endpoints.contains(where: \.isReady) {
                    report.skip("EndpointSlice \(slice.key)", .targetPortMismatch)
                }
                continue
            }
            for endpoint in slice.endpoints where endpoint.isReady {
                guard let address = endpoint.addresses.first else { continue }
                guard let ip = IPAddressText.canonical(address)?.text else {
                    report.skip("EndpointSlice \(slice.key)", .unsupportedAddress(address))
                    continue
                }
                guard seen.insert(ip).inserted else { continue }
                var hostname = endpoint.hostname.flatMap { $0.isEmpty ? nil : $0 }
                if let name = hostname, !DNSLabel.isValid(name) {
                    report.skip("EndpointSlice \(slice.key)", .invalidHostname(name))
                    hostname = nil
                }
                endpoints.append(Endpoint(ip: ip, ready: true, hostname: hostname, cluster: cluster))
            }
        }
        return (resolved, endpoints)
    }

    /// The mirror Service's local ClusterIPs, canonical; nil (and reported) when none yet.
    static func localIPs(namespace: String, mirroredName: String, localClusterIPs: [String: [String]],
                         report: inout Report) -> [String]? {
        let key = localKey(namespace: namespace, mirroredName: mirroredName)
        var ips: [String] = []
        for text in localClusterIPs[key] ?? [] where !text.isEmpty && text != "None" {
            guard let ip = IPAddressText.canonical(text)?.text else {
                report.skip(key, .invalidLocalClusterIP(text))
                continue
            }
            if !ips.contains(ip) { ips.append(ip) }
        }
        guard !ips.isEmpty else {
            report.skip(key, .awaitingClusterIP)
            return nil
        }
        return ips
    }

    /// The safety net: services the state model still rejects (a ClusterIP two mirror
    /// Services share, …) are removed and reported, until the state validates.
    static func enforceValidity(_ translation: MirrorTranslation) -> MirrorTranslation {
        var result = translation
        for _ in 0..<8 {
            let issues = result.state().validationIssues()
            guard !issues.isEmpty else { return result }
            var drop = Set<Int>()
            for issue in issues {
                guard issue.object.hasPrefix("services["), let close = issue.object.firstIndex(of: "]"),
                      let index = Int(issue.object[issue.object.index(issue.object.startIndex, offsetBy: 9)..<close]),
                      result.services.indices.contains(index) else { continue }
                if drop.insert(index).inserted {
                    let service = result.services[index]
                    result.skipped.append(MirrorSkip(cluster: service.cluster, object: service.key.description,
                                                     reason: .invalidState(issue.description)))
                }
            }
            if drop.isEmpty {
                // An issue not attributable to one service (should not happen): keep no services.
                for service in result.services {
                    result.skipped.append(MirrorSkip(cluster: service.cluster, object: service.key.description,
                                                     reason: .invalidState(issues.map(\.description).joined(separator: "; "))))
                }
                result.services = []
                return result
            }
            result.services = result.services.enumerated().filter { !drop.contains($0.offset) }.map(\.element)
        }
        return result
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> Substring {
        var text = self
        while text.first == " " { text = text.dropFirst() }
        while text.last == " " { text = text.dropLast() }
        return text
    }
}
