/// The fast path of ``FeedEvent/decode(line:)``: events read straight from the line's bytes
/// with ``FeedJSONScanner``, filling the same defaults as the `Codable` conformances
/// (`MirrorState+Codable.swift`).
///
/// Whatever this path does not recognise (an unknown or repeated field, a null where a value
/// is required, escapes, numbers with fractions) throws ``FeedJSONScanner/Unsupported`` and the
/// line goes through `JSONDecoder`, which either decodes it the same way or names the error.
/// `FeedFastDecodingTests` checks that both paths agree.
extension FeedEvent {
    static func decodeFast(_ bytes: UnsafeRawBufferPointer) throws -> FeedEvent {
        var scanner = FeedJSONScanner(bytes)
        var type: String?, revision: UInt64?, epoch: String?, state: MirrorState?
        var cluster: Cluster?, service: MirroredService?, name: String?, namespace: String?, mirroredName: String?
        var seen = FeedFieldSet()
        try scanner.object { s, key in
            switch key {
            case "type": try seen.insert(0); type = try s.string()
            case "revision": try seen.insert(1); revision = try s.unsigned()
            case "epoch": try seen.insert(2); epoch = try s.string()
            case "state": try seen.insert(3); state = try s.mirrorState()
            case "cluster": try seen.insert(4); cluster = try s.cluster()
            case "service": try seen.insert(5); service = try s.mirroredService()
            case "name": try seen.insert(6); name = try s.string()
            case "namespace": try seen.insert(7); namespace = try s.string()
            case "mirroredName": try seen.insert(8); mirroredName = try s.string()
            default: throw FeedJSONScanner.Unsupported()
            }
        }
        try scanner.end()
        guard let type, let revision else { throw FeedJSONScanner.Unsupported() }
        switch type {
        case "snapshot":
            guard let epoch, let state else { break }
            return .snapshot(epoch: epoch, revision: revision, state: state)
        case "resume":
            guard let epoch else { break }
            return .resumed(epoch: epoch, revision: revision)
        case "bookmark":
            return .bookmark(revision: revision)
        case "upsertCluster":
            guard let cluster else { break }
            return .delta(revision: revision, .upsertCluster(cluster))
        case "deleteCluster":
            guard let name else { break }
            return .delta(revision: revision, .deleteCluster(name: name))
        case "upsertService":
            guard let service else { break }
            return .delta(revision: revision, .upsertService(service))
        case "deleteService":
            guard let namespace, let mirroredName else { break }
            return .delta(revision: revision, .deleteService(ServiceKey(namespace: namespace, mirroredName: mirroredName)))
        default:
            break
        }
        throw FeedJSONScanner.Unsupported()
    }
}

/// The fields already read in one object: a field given twice goes to the full decoder,
/// which decides what that means.
struct FeedFieldSet {
    private var bits: UInt32 = 0

    mutating func insert(_ field: Int) throws {
        let bit = UInt32(1) << UInt32(field)
        guard bits & bit == 0 else { throw FeedJSONScanner.Unsupported() }
        bits |= bit
    }
}

extension FeedJSONScanner {
    mutating func mirrorState() throws -> MirrorState {
        var state = MirrorState()
        var seen = FeedFieldSet()
        try object { s, key in
            switch key {
            case "clusterDomain": try seen.insert(0); if !(try s.null()) { state.clusterDomain = try s.string() }
            case "clusters": try seen.insert(1); if !(try s.null()) { try s.array { state.clusters.append(try $0.cluster()) } }
            case "services": try seen.insert(2); if !(try s.null()) { try s.array { state.services.append(try $0.mirroredService()) } }
            default: throw Unsupported()
            }
        }
        return state
    }

    mutating func cluster() throws -> Cluster {
        var name: String?, gateway: Gateway?, masquerade = false
        var seen = FeedFieldSet()
        try object { s, key in
            switch key {
            case "name": try seen.insert(0); name = try s.string()
            case "gateway": try seen.insert(1); gateway = try s.null() ? nil : try s.gateway()
            case "masquerade": try seen.insert(2); masquerade = try s.null() ? false : try s.bool()
            default: throw Unsupported()
            }
        }
        guard let name else { throw Unsupported() }
        return Cluster(name: name, gateway: gateway, masquerade: masquerade)
    }

    mutating func gateway() throws -> Gateway {
        var addresses: [String]?, port = Gateway.defaultPort, identity: String?, alive = true
        var seen = FeedFieldSet()
        try object { s, key in
            switch key {
            case "addresses": try seen.insert(0); addresses = try s.strings()
            case "port": try seen.insert(1); port = try s.null() ? Gateway.defaultPort : try s.int()
            case "identity": try seen.insert(2); identity = try s.null() ? nil : try s.string()
            case "alive": try seen.insert(3); alive = try s.null() ? true : try s.bool()
            default: throw Unsupported()
            }
        }
        guard let addresses else { throw Unsupported() }
        return Gateway(addresses: addresses, port: port, identity: identity, alive: alive)
    }

    mutating func mirroredService() throws -> MirroredService {
        var name: String?, namespace: String?, cluster: String?, mode: MirrorMode?, ips: [String]?
        var ports: [ServicePort] = [], endpoints: [Endpoint] = []
        var seen = FeedFieldSet()
        try object { s, key in
            switch key {
            case "name": try seen.insert(0); name = try s.string()
            case "namespace": try seen.insert(1); namespace = try s.string()
            case "cluster": try seen.insert(2); cluster = try s.null() ? nil : try s.string()
            case "mode":
                try seen.insert(3)
                guard let value = MirrorMode(rawValue: try s.string()) else { throw Unsupported() }
                mode = value
            case "ips": try seen.insert(4); ips = try s.strings()
            case "ports": try seen.insert(5); if !(try s.null()) { try s.array { ports.append(try $0.servicePort()) } }
            case "endpoints": try seen.insert(6); if !(try s.null()) { try s.array { endpoints.append(try $0.endpoint()) } }
            default: throw Unsupported()
            }
        }
        guard let name, let namespace, let mode, let ips else { throw Unsupported() }
        return MirroredService(name: name, namespace: namespace, cluster: cluster, mode: mode, ips: ips, ports: ports, endpoints: endpoints)
    }

    mutating func servicePort() throws -> ServicePort {
        var name: String?, proto = L4Protocol.tcp, port: Int?, targetPort: Int?, gatewayPort: Int?
        var seen = FeedFieldSet()
        try object { s, key in
            switch key {
            case "name": try seen.insert(0); name = try s.null() ? nil : try s.string()
            case "protocol":
                try seen.insert(1)
                if !(try s.null()) {
                    guard let value = L4Protocol(rawValue: try s.string()) else { throw Unsupported() }
                    proto = value
                }
            case "port": try seen.insert(2); port = try s.int()
            case "targetPort": try seen.insert(3); targetPort = try s.null() ? nil : try s.int()
            case "gatewayPort": try seen.insert(4); gatewayPort = try s.null() ? nil : try s.int()
            default: throw Unsupported()
            }
        }
        guard let port else { throw Unsupported() }
        return ServicePort(name: name, protocol: proto, port: port, targetPort: targetPort, gatewayPort: gatewayPort)
    }

    mutating func endpoint() throws -> Endpoint {
        var ip: String?, ready = true, hostname: String?, cluster: String?
        var seen = FeedFieldSet()
        try object { s, key in
            switch key {
            case "ip": try seen.insert(0); ip = try s.string()
            case "ready": try seen.insert(1); ready = try s.null() ? true : try s.bool()
            case "hostname": try seen.insert(2); hostname = try s.null() ? nil : try s.string()
            case "cluster": try seen.insert(3); cluster = try s.null() ? nil : try s.string()
            default: throw Unsupported()
            }
        }
        guard let ip else { throw Unsupported() }
        return Endpoint(ip: ip, ready: ready, hostname: hostname, cluster: cluster)
    }
}
