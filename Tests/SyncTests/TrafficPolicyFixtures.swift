@testable import MirrorModel
@testable import MirrorFeed

/// The policies appended to `validYAML`: a local service split with a mirror and failing over
/// (every field spelled out), and one of a single mirror backend with the defaults.
let policiesYAML = """
policies:
  - name: bar
    namespace: default
    ips: ["10.96.5.5", "fd00:96::5"]
    ports: [{name: http, protocol: TCP, port: 80}]
    backends: [{local: true, weight: 900}, {mirror: bar-paris, weight: 100}]
    failover: [bar-paris, web-federated]
    localReady: false
  - name: db
    namespace: default
    ips: ["10.96.5.6"]
    ports: [{port: 5432}]
    backends: [{mirror: db-paris, weight: 1}]
"""

/// `validYAML` with `policiesYAML`.
let policyStateYAML = validYAML + "\n" + policiesYAML

/// `policyStateYAML` with one substitution inside its policies, which must occur there once.
func brokenPolicy(_ original: String, _ replacement: String) -> String {
    let parts = policiesYAML.components(separatedBy: original)
    precondition(parts.count == 2, "fixture substitution \(original) must match once, matched \(parts.count - 1)")
    return validYAML + "\n" + parts.joined(separator: replacement)
}

enum PolicyFixtures {
    /// `FeedFixtures.state(services:)`'s cluster and services, with `svc-0` mirrored from a
    /// second cluster `berlin` as well, and a policy for the local `svc-0` splitting with both
    /// mirrors.
    static func state(services count: Int = 3) -> MirrorState {
        var state = FeedFixtures.state(services: count, extraClusters: ["berlin"])
        state.services.append(FeedFixtures.service(0, cluster: "berlin"))
        state.services[state.services.count - 1].ips = ["10.114.0.1"]
        state.policies = [policy()]
        return state
    }

    /// The policy of the local `name` (ClusterIP 10.96.0.N): 80/20 with `svc-0-paris`,
    /// failing over to `svc-0-paris`, then `svc-0-berlin`.
    static func policy(_ name: String = "svc-0", ip: String = "10.96.0.1", localReady: Bool = true) -> TrafficPolicy {
        TrafficPolicy(name: name, namespace: "default", ips: [ip], ports: [PolicyPort(name: "http", port: 80)],
                      backends: [PolicyBackend(weight: 800), PolicyBackend(mirror: "svc-0-paris", weight: 200)],
                      failover: ["svc-0-paris", "svc-0-berlin"], localReady: localReady)
    }
}
