import Foundation
import Testing
@testable import MirrorModel
@testable import MirrorFeed

/// Traffic policies in state files: defaults, the example, and every rule with its message,
/// through the YAML reader and through the JSON paths (fast decoder and `Codable`).
@Suite struct TrafficPolicyValidationTests {
    @Test func policiesParseWithDefaults() throws {
        let state = try MirrorState(parsing: policyStateYAML)
        #expect(state.policies.count == 2)
        let bar = state.policies[0]
        #expect(bar.key == PolicyKey(namespace: "default", name: "bar") && bar.key.description == "default/bar")
        #expect(bar.ips == ["10.96.5.5", "fd00:96::5"])
        #expect(bar.ports == [PolicyPort(name: "http", protocol: .tcp, port: 80)])
        #expect(bar.backends == [PolicyBackend(weight: 900), PolicyBackend(mirror: "bar-paris", weight: 100)])
        #expect(bar.backends[0].isLocal && !bar.backends[1].isLocal)
        #expect(bar.failover == ["bar-paris", "web-federated"])
        #expect(bar.localReady == false)
        #expect(bar.totalWeight == 1000)
        #expect(bar.referencedServices.map(\.description) == ["default/bar-paris", "default/web-federated"])
        let db = state.policies[1]
        #expect(db.ports == [PolicyPort(port: 5432)], "protocol defaults to TCP, name to none")
        #expect(db.failover.isEmpty, "failover defaults to none")
        #expect(db.localReady, "localReady defaults to true")
    }

    @Test func theExampleIsValid() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../examples/policies.yaml").standardized.path
        let state = try MirrorState(contentsOf: path)
        let policy = try #require(state.policies.first)
        #expect(state.policies.count == 1)
        #expect(policy.key == PolicyKey(namespace: "default", name: "bar"))
        #expect(policy.backends == [PolicyBackend(weight: 900), PolicyBackend(mirror: "bar-paris", weight: 100)])
        #expect(policy.failover == ["bar-paris", "bar-berlin"])
        // The example is two-clusters.yaml with policies (and bar-berlin, which they need).
        let twoClusters = try MirrorState(contentsOf: path.replacingOccurrences(of: "policies.yaml", with: "two-clusters.yaml"))
        #expect(state.clusters == twoClusters.clusters)
        #expect(Array(state.services.prefix(twoClusters.services.count)) == twoClusters.services)
        #expect(state.services.dropFirst(twoClusters.services.count).map(\.mirroredName) == ["bar-berlin"])
    }

    @Test func localFalseBesideAMirrorIsAMirror() throws {
        let state = try MirrorState(parsing: brokenPolicy("{mirror: bar-paris, weight: 100}", "{local: false, mirror: bar-paris, weight: 100}"))
        #expect(state.policies[0].backends[1] == PolicyBackend(mirror: "bar-paris", weight: 100))
    }

    @Test func aStateWithoutPoliciesIsUnchanged() throws {
        let state = try MirrorState(parsing: validYAML)
        #expect(state.policies.isEmpty)
        #expect(try MirrorState(parsing: validYAML + "\npolicies: []\n") == state)
        #expect(try MirrorState(parsing: validYAML + "\npolicies:\n") == state, "an empty YAML value is no policies")
    }

    /// (substitution in the policies, replacement, every issue expected, in order). The
    /// messages are the contract: operators read them in `check` and in the agent's logs.
    static let rules: [(String, String, [String])] = [
        ("name: bar\n", "name: Bar\n",
         [#"policies[0] default/Bar: name: "Bar" is not a DNS label (lowercase letters, digits and '-', at most 63)"#]),
        ("name: bar\n    namespace: default", "name: bar\n    namespace: Default", [
            #"policies[0] Default/bar: namespace: "Default" is not a DNS label"#,
            "policies[0] Default/bar: backends[1].mirror: bar-paris is not a mirrored service in Default",
            "policies[0] Default/bar: failover[0]: bar-paris is not a mirrored service in Default",
            "policies[0] Default/bar: failover[1]: web-federated is not a mirrored service in Default",
        ]),
        (#"ips: ["10.96.5.5", "fd00:96::5"]"#, #"ips: ["10.96.5.300", "fd00:96::5"]"#,
         [#"policies[0] default/bar: ips[0]: "10.96.5.300" is not an IP address"#]),
        (#"ips: ["10.96.5.5", "fd00:96::5"]"#, #"ips: ["10.96.5.5", "10.96.5.5"]"#,
         ["policies[0] default/bar: ips[1]: duplicate ClusterIP 10.96.5.5"]),
        (#"ips: ["10.96.5.5", "fd00:96::5"]"#, #"ips: ["fd00:96::5", "fd00:96:0::0005"]"#,
         ["policies[0] default/bar: ips[1]: duplicate ClusterIP fd00:96:0::0005"]),
        (#"ips: ["10.96.5.5", "fd00:96::5"]"#, "ips: []",
         ["policies[0] default/bar: ips: at least one ClusterIP (of the local service) is required"]),
        (#"ips: ["10.96.5.5", "fd00:96::5"]"#, #"ips: ["10.112.0.10", "fd00:96::5"]"#,
         ["policies[0] default/bar: ips[0]: 10.112.0.10 is the ClusterIP of services[0] default/bar-paris; a policy is for a local service"]),
        (#"ips: ["10.96.5.5", "fd00:96::5"]"#, #"ips: ["10.96.5.5", "FD00:0::10"]"#,
         ["policies[0] default/bar: ips[1]: FD00:0::10 is the ClusterIP of services[0] default/bar-paris; a policy is for a local service"]),
        (#"ips: ["10.96.5.6"]"#, #"ips: ["10.96.5.5"]"#,
         ["policies[1] default/db: ips[0]: 10.96.5.5 is already used by policies[0] default/bar"]),
        ("{name: http, protocol: TCP, port: 80}", "{name: http, protocol: TCP, port: 0}",
         ["policies[0] default/bar: ports[0].port: must be between 1 and 65535, got 0"]),
        ("{name: http, protocol: TCP, port: 80}", "{name: http, protocol: TCP, port: 65536}",
         ["policies[0] default/bar: ports[0].port: must be between 1 and 65535, got 65536"]),
        ("{name: http, protocol: TCP, port: 80}", "{name: http, protocol: TCP, port: 80}, {port: 80}",
         ["policies[0] default/bar: ports[1].port: duplicate port 80/TCP"]),
        ("{name: http, protocol: TCP, port: 80}", "{name: http, protocol: TCP, port: 80}, {name: http, protocol: UDP, port: 53}", [
            #"policies[0] default/bar: ports[1].name: duplicate port name "http""#,
            "policies[0] default/bar: backends[1].mirror: bar-paris has no port 53/UDP (a mirror must carry every port of the policy)",
            "policies[0] default/bar: failover[0]: bar-paris has no port 53/UDP (a mirror must carry every port of the policy)",
        ]),
        ("{name: http, protocol: TCP, port: 80}", "{name: _http, protocol: TCP, port: 80}",
         [#"policies[0] default/bar: ports[0].name: "_http" is not a valid port name (at most 15 lowercase letters, digits and '-')"#]),
        ("ports: [{name: http, protocol: TCP, port: 80}]", "ports: []",
         ["policies[0] default/bar: ports: at least one port is required"]),
        ("{name: http, protocol: TCP, port: 80}", "{name: http, protocol: UDP, port: 80}", [
            "policies[0] default/bar: backends[1].mirror: bar-paris has no port 80/UDP (a mirror must carry every port of the policy)",
            "policies[0] default/bar: failover[0]: bar-paris has no port 80/UDP (a mirror must carry every port of the policy)",
            "policies[0] default/bar: failover[1]: web-federated has no port 80/UDP (a mirror must carry every port of the policy)",
        ]),
        ("{name: http, protocol: TCP, port: 80}", "{name: http, protocol: ICMP, port: 80}",
         [#"policies[0] default/bar: ports[0].protocol: unknown protocol "ICMP"; expected TCP, UDP or SCTP"#]),
        ("{local: true, weight: 900}", "{local: true, weight: 1001}",
         ["policies[0] default/bar: backends[0].weight: must be between 0 and 1000, got 1001"]),
        ("{mirror: bar-paris, weight: 100}", "{mirror: bar-paris, weight: -1}",
         ["policies[0] default/bar: backends[1].weight: must be between 0 and 1000, got -1"]),
        ("{local: true, weight: 900}, {mirror: bar-paris, weight: 100}", "{local: true, weight: 0}, {mirror: bar-paris, weight: 0}",
         ["policies[0] default/bar: backends: the weights add up to 0; at least one must be positive"]),
        ("backends: [{local: true, weight: 900}, {mirror: bar-paris, weight: 100}]", "backends: []",
         ["policies[0] default/bar: backends: at least one backend is required (the local service, {local: true, weight: W}, or a mirror)"]),
        ("{local: true, weight: 900}", "{local: true, weight: 900}, {local: true, weight: 5}",
         ["policies[0] default/bar: backends[1].local: only one backend can be the local service"]),
        ("{mirror: bar-paris, weight: 100}", "{mirror: bar-paris, weight: 100}, {mirror: bar-paris, weight: 1}",
         ["policies[0] default/bar: backends[2].mirror: duplicate backend bar-paris"]),
        ("{mirror: bar-paris, weight: 100}", "{mirror: bar-tokyo, weight: 100}",
         ["policies[0] default/bar: backends[1].mirror: bar-tokyo is not a mirrored service in default"]),
        ("{mirror: db-paris, weight: 1}", "{mirror: db, weight: 1}",
         ["policies[1] default/db: backends[0].mirror: db is not a mirrored service in default"]),
        ("{mirror: db-paris, weight: 1}", "{mirror: bar-paris, weight: 1}",
         ["policies[1] default/db: backends[0].mirror: bar-paris has no port 5432/TCP (a mirror must carry every port of the policy)"]),
        ("failover: [bar-paris, web-federated]", "failover: [bar-paris, bar-tokyo]",
         ["policies[0] default/bar: failover[1]: bar-tokyo is not a mirrored service in default"]),
        ("failover: [bar-paris, web-federated]", "failover: [bar-paris, bar-paris]",
         ["policies[0] default/bar: failover[1]: duplicate failover mirror bar-paris"]),
        ("failover: [bar-paris, web-federated]", "failover: [db-paris]",
         ["policies[0] default/bar: failover[0]: db-paris has no port 80/TCP (a mirror must carry every port of the policy)"]),
        ("failover: [bar-paris, web-federated]", "failover: bar-paris",
         ["policies[0] default/bar: failover: must be a list, got a string"]),
        ("name: db\n", "name: bar\n", [
            "policies[1] default/bar: name: duplicate policy default/bar, also defined as policies[0] default/bar",
        ]),
        ("localReady: false", "localReady: maybe",
         ["policies[0] default/bar: localReady: must be true or false, got a string"]),
        ("localReady: false", "localReady: false\n    weights: []",
         ["policies[0] default/bar: weights: unknown field (check the spelling)"]),
        ("{mirror: bar-paris, weight: 100}", "{mirror: bar-paris, wieght: 100}", [
            "policies[0] default/bar: backends[1].weight: required field is missing (0 to 1000)",
            "policies[0] default/bar: backends[1].wieght: unknown field (check the spelling)",
        ]),
        ("{local: true, weight: 900}", "{local: true, weight: ninety}",
         ["policies[0] default/bar: backends[0].weight: must be an integer, got a string"]),
        ("{mirror: bar-paris, weight: 100}", "{local: true, mirror: bar-paris, weight: 100}",
         ["policies[0] default/bar: backends[1]: a backend is either {local: true, weight: W} or {mirror: NAME, weight: W}"]),
        ("{mirror: bar-paris, weight: 100}", "{weight: 100}",
         ["policies[0] default/bar: backends[1]: a backend is either {local: true, weight: W} or {mirror: NAME, weight: W}"]),
        ("{local: true, weight: 900}", "{local: false, weight: 900}",
         ["policies[0] default/bar: backends[0]: a backend is either {local: true, weight: W} or {mirror: NAME, weight: W}"]),
        ("{local: true, weight: 900}", "{local: yes please, weight: 900}",
         ["policies[0] default/bar: backends[0].local: must be true or false, got a string"]),
        ("{local: true, weight: 900}", "local",
         ["policies[0] default/bar: backends[0]: must be a map, got a string"]),
        ("  - name: db\n    namespace: default\n", "  - namespace: default\n",
         ["policies[1]: name: required field is missing (the local Service's name)"]),
        ("backends: [{mirror: db-paris, weight: 1}]", "",
         ["policies[1] default/db: backends: required field is missing (e.g. [{local: true, weight: 900}, {mirror: db-paris, weight: 100}])"]),
        (#"    ips: ["10.96.5.6"]"#, "", ["policies[1] default/db: ips: required field is missing (the local Service's ClusterIPs)"]),
        ("    ports: [{port: 5432}]", "", ["policies[1] default/db: ports: required field is missing"]),
    ]

    @Test(arguments: 0..<rules.count)
    func eachRuleNamesObjectAndField(_ index: Int) {
        let (original, replacement, expected) = Self.rules[index]
        #expect(issues(of: brokenPolicy(original, replacement)).map(\.description) == expected)
    }

    /// The semantic rules (documents whose structure is right) give the same messages when
    /// the state comes as JSON: through the fast decoder, and through `Codable` for a JSON
    /// spelling only it accepts (an escaped key).
    @Test(arguments: 0..<rules.count)
    func jsonDocumentsGetTheSameMessages(_ index: Int) throws {
        let (original, replacement, expected) = Self.rules[index]
        let document = try DocumentValue.parse(brokenPolicy(original, replacement))
        var reader = StateReader()
        let state = reader.read(document)
        guard reader.issues.isEmpty else { return }  // structural: only the YAML reader explains those
        let json = String(decoding: try state.canonicalJSON(), as: UTF8.self)
        #expect(Array(json.utf8).withUnsafeBufferPointer { StateJSONDecoder.decode($0) } == state, "the fast decoder reads the encoder's form")
        #expect(issues(of: json).map(\.description) == expected)
        let escaped = json.replacingOccurrences(of: "\"localReady\":", with: "\"local\\u0052eady\":")
        #expect(escaped != json)
        #expect(Array(escaped.utf8).withUnsafeBufferPointer { StateJSONDecoder.decode($0) } == nil)
        #expect(issues(of: escaped).map(\.description) == expected)
    }

    @Test func everyProblemIsListedAtOnceInFileOrder() {
        let text = brokenPolicy("{mirror: bar-paris, weight: 100}", "{mirror: bar-tokyo, weight: 2000}")
            .replacingOccurrences(of: "port: 4143, identity", with: "port: 99999, identity")
            .replacingOccurrences(of: "{mirror: db-paris, weight: 1}", with: "{mirror: db-paris, weight: 1}, {local: true, weight: 1}, {local: true, weight: 1}")
        #expect(issues(of: text).map(\.description) == [
            "clusters[0] paris: gateway.port: must be between 1 and 65535, got 99999",
            "policies[0] default/bar: backends[1].weight: must be between 0 and 1000, got 2000",
            "policies[0] default/bar: backends[1].mirror: bar-tokyo is not a mirrored service in default",
            "policies[1] default/db: backends[2].local: only one backend can be the local service",
        ])
    }

    @Test func policiesMustBeAListOfMaps() {
        #expect(issues(of: validYAML + "\npolicies: {name: bar}\n").map(\.description) == ["state: policies: must be a list, got a map"])
        #expect(issues(of: validYAML + "\npolicies: [bar]\n").map(\.description) == ["policies[0]: must be a map, got a string"])
    }

    @Test func aStateBuiltInCodeIsValidatedAlike() {
        var state = PolicyFixtures.state()
        #expect(state.validationIssues().isEmpty)
        state.policies[0].backends.append(PolicyBackend(mirror: "svc-9-paris", weight: 1))
        state.policies[0].ips = ["10.112.0.2"]
        #expect(state.validationIssues().map(\.description) == [
            "policies[0] default/svc-0: backends[2].mirror: svc-9-paris is not a mirrored service in default",
            "policies[0] default/svc-0: ips[0]: 10.112.0.2 is the ClusterIP of services[1] default/svc-1-paris; a policy is for a local service",
        ])
    }
}
