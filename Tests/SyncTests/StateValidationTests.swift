import Foundation
import Testing
@testable import MirrorModel
@testable import MirrorFeed

@Suite struct StateValidationTests {
    @Test func validStateParsesWithDefaults() throws {
        let state = try MirrorState(parsing: validYAML)
        #expect(state.clusters.map(\.name) == ["paris", "berlin", "flat"])
        #expect(state.clusters[1].gateway?.port == 4143, "gateway port defaults to 4143")
        #expect(state.clusters[1].gateway?.alive == true)
        #expect(state.clusters[1].masquerade == false)
        #expect(state.services.map(\.mirroredName) == ["bar-paris", "db-paris", "web-federated"])
        #expect(state.services[2].ports[1].targetPort == 53, "targetPort defaults to port")
        #expect(state.services[2].ports[1].protocol == .udp)
        #expect(state.services[0].ports[0].gatewayPort == 4180)
        #expect(state.services[1].endpoints[0].hostname == "db-0")
        #expect(state.services[0].dnsName(zone: state.clusterDomain) == "bar-paris.default.svc.cluster.local")
    }

    @Test func exampleFileIsValid() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../examples/two-clusters.yaml").standardized.path
        let state = try MirrorState(contentsOf: path)
        #expect(Set(state.services.map(\.mode)) == Set(MirrorMode.allCases))
        #expect(Set(state.clusters.map(\.name)) == ["paris", "berlin"])
    }

    @Test func emptyDocumentIsAnEmptyState() throws {
        let state = try MirrorState(parsing: "")
        #expect(state == MirrorState())
    }

    /// Each rule from the foundation issue, as (substitution, expected object, field, words in the message).
    static let rules: [(String, String, String, String, String)] = [
        ("- name: paris", "- name: Paris", "clusters[0] Paris", "name", "not a DNS label"),
        ("- name: bar\n", "- name: bar_x\n", "services[0] default/bar_x-paris", "name", "not a DNS label"),
        ("namespace: default\n    cluster: paris\n    mode: gateway", "namespace: Default\n    cluster: paris\n    mode: gateway",
         "services[0] Default/bar-paris", "namespace", "not a DNS label"),
        ("- name: web", "- name: w234567890123456789012345678901234567890123456789012345678901",
         "services[2] default/w234567890123456789012345678901234567890123456789012345678901-federated", "name", "longer than 63"),
        ("ips: [\"10.112.0.12\"]", "ips: [\"10.112.0.10\"]", "services[2] default/web-federated", "ips", "10.112.0.10:80/TCP is already used by services[0] default/bar-paris"),
        ("- name: db", "- name: bar", "services[1] default/bar-paris", "name", "duplicate service default/bar-paris"),
        ("namespace: default\n    cluster: paris\n    mode: remote", "namespace: default\n    cluster: rome\n    mode: remote",
         "services[1] default/db-rome", "cluster", "unknown cluster \"rome\""),
        ("mode: remote-discovery", "mode: flat", "services[1] default/db-paris", "mode", "unknown mode \"flat\""),
        ("mode: federated", "mode: federated\n    cluster: paris", "services[2] default/web-federated", "cluster", "federated service has no cluster"),
        ("cluster: paris\n    mode: gateway", "cluster: flat\n    mode: gateway", "services[0] default/bar-flat", "cluster", "which has no gateway"),
        ("port: 5432, targetPort: 5432", "port: 70000, targetPort: 5432", "services[1] default/db-paris", "ports[0].port", "between 1 and 65535, got 70000"),
        ("port: 5432, targetPort: 5432", "port: 5432, targetPort: 0", "services[1] default/db-paris", "ports[0].targetPort", "between 1 and 65535, got 0"),
        ("port: 4143, identity", "port: 0, identity", "clusters[0] paris", "gateway.port", "between 1 and 65535"),
        ("protocol: UDP", "protocol: ICMP", "services[2] default/web-federated", "ports[1].protocol", "unknown protocol \"ICMP\""),
        ("ips: [\"10.112.0.11\"]", "ips: [\"10.112.0.300\"]", "services[1] default/db-paris", "ips[0]", "\"10.112.0.300\" is not an IP address"),
        ("\"192.0.2.10\"", "\"gw.example\"", "clusters[0] paris", "gateway.addresses[0]", "not an IP address"),
        ("{ip: \"10.20.1.5\"", "{ip: \"10.20.1.5.1\"", "services[1] default/db-paris", "endpoints[0].ip", "not an IP address"),
        ("ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080, gatewayPort: 4180}]",
         "ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080, gatewayPort: 4180}]\n    endpoints: [{ip: \"10.20.1.9\"}]",
         "services[0] default/bar-paris", "endpoints", "gateway-mode service has no endpoints"),
        ("mode: gateway", "mode: gateway\n    prots: []", "services[0] default/bar-paris", "prots", "unknown field"),
        ("masquerade: true", "masquerade: true\n    gatway: {}", "clusters[0] paris", "gatway", "unknown field"),
        ("targetPort: 8080, gatewayPort", "targetPort: 8080, tragetPort: 1, gatewayPort", "services[0] default/bar-paris", "ports[0].tragetPort", "unknown field"),
        ("clusterDomain: cluster.local", "clusterDomain: cluster.local\nclusterDomian: x", "state", "clusterDomian", "unknown field"),
        ("port: 5432, targetPort: 5432", "port: \"5432\", targetPort: 5432", "services[1] default/db-paris", "ports[0].port", "must be an integer, got a string"),
        ("masquerade: true", "masquerade: yes please", "clusters[0] paris", "masquerade", "must be true or false"),
        ("ips: [\"10.112.0.11\"]", "ips: \"10.112.0.11\"", "services[1] default/db-paris", "ips", "must be a list"),
        ("ready: true, hostname: db-0", "ready: true, hostname: DB_0", "services[1] default/db-paris", "endpoints[0].hostname", "not a DNS label"),
        ("{ip: \"10.20.1.7\", cluster: paris", "{ip: \"10.20.1.7\", cluster: madrid", "services[2] default/web-federated", "endpoints[0].cluster", "unknown cluster \"madrid\""),
        ("{ip: \"10.20.1.7\", cluster: paris, ready: true}", "{ip: \"10.20.1.7\", ready: true}", "services[2] default/web-federated", "endpoints[0].cluster", "required on every endpoint"),
        ("ips: [\"10.112.0.12\"]", "ips: []", "services[2] default/web-federated", "ips", "at least one ClusterIP"),
        ("{name: dns, protocol: UDP, port: 53}", "{name: http, protocol: UDP, port: 53}", "services[2] default/web-federated", "ports[1].name", "duplicate port name"),
        ("{name: dns, protocol: UDP, port: 53}", "{name: dns, protocol: TCP, port: 80}", "services[2] default/web-federated", "ports[1].port", "duplicate port 80/TCP"),
        ("{name: dns, protocol: UDP", "{name: \"_dns\", protocol: UDP", "services[2] default/web-federated", "ports[1].name", "not a valid port name"),
        ("- name: flat", "- name: berlin", "clusters[2] berlin", "name", "duplicate cluster name"),
        ("clusterDomain: cluster.local", "clusterDomain: cluster..local", "state", "clusterDomain", "not a valid DNS domain"),
        ("namespace: default\n    cluster: paris\n    mode: remote", "namespace: default\n    mode: remote",
         "services[1] default/db-", "cluster", "required for mode remote-discovery"),
    ]

    @Test(arguments: 0..<rules.count)
    func eachRuleNamesObjectAndField(_ index: Int) {
        let (original, replacement, object, field, words) = Self.rules[index]
        let found = issues(of: broken(original, replacement))
        #expect(found.contains { $0.object == object && $0.field == field && $0.message.contains(words) },
                "expected \(object): \(field): …\(words)…, got \(found.map(\.description))")
    }

    @Test func missingRequiredFieldsAreNamed() {
        let found = issues(of: """
            clusters: [{gateway: {port: 4143}}]
            services: [{name: x, namespace: y, cluster: c}]
            """)
        let text = found.map(\.description)
        #expect(text.contains("clusters[0]: name: required field is missing"))
        #expect(text.contains("clusters[0]: gateway.addresses: required field is missing"))
        #expect(text.contains { $0.hasPrefix("services[0] y/x-c: mode: required field is missing") })
        #expect(text.contains { $0.hasPrefix("services[0] y/x-c: ips: required field is missing") })
    }

    @Test func everyProblemIsListedAtOnce() {
        let text = validYAML
            .replacingOccurrences(of: "mode: remote-discovery", with: "mode: flat")
            .replacingOccurrences(of: "port: 4143, identity", with: "port: 99999, identity")
            .replacingOccurrences(of: "{ip: \"10.30.1.7\", cluster: berlin", with: "{ip: \"10.30.1.7\", cluster: madrid")
        let found = issues(of: text)
        #expect(found.count == 3, "\(found.map(\.description))")
        #expect(found.map(\.object) == ["clusters[0] paris", "services[1] default/db-paris", "services[2] default/web-federated"],
                "issues are ordered as the file is")
    }

    @Test func unreadableFieldIsReportedOnce() {
        let found = issues(of: broken("port: 5432, targetPort: 5432", "port: eighty"))
        #expect(found.count == 1, "a port that is not a number must not also be 'out of range': \(found)")
    }

    @Test func syntaxErrorsAreNotValidationErrors() {
        #expect(throws: DocumentSyntaxError.self) { try MirrorState(parsing: "clusters: [unclosed") }
        #expect(throws: DocumentSyntaxError.self) { try MirrorState(parsing: "{\"clusters\": [}") }
        // Aliases nested ten deep would expand to 10^10 nodes ("billion laughs").
        var laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...10 {
            let previous = "*a\(level - 1)"
            laughs += "a\(level): &a\(level) [\(Array(repeating: previous, count: 10).joined(separator: ", "))]\n"
        }
        #expect(throws: DocumentSyntaxError.self) { try MirrorState(parsing: laughs) }
    }

    @Test func equivalentIPSpellingsConflict() {
        let found = issues(of: """
            clusters: [{name: p, gateway: {addresses: ["192.0.2.1"]}}]
            services:
              - {name: a, namespace: n, cluster: p, mode: gateway, ips: ["fd00::10"], ports: [{port: 80}]}
              - {name: b, namespace: n, cluster: p, mode: gateway, ips: ["fd00:0:0::0010"], ports: [{port: 80}]}
            """)
        #expect(found.map(\.description) == ["services[1] n/b-p: ips: fd00::10:80/TCP is already used by services[0] n/a-p"])
    }

    @Test func validStateHasNoIssues() throws {
        let state = try MirrorState(parsing: validYAML)
        #expect(state.validationIssues().isEmpty)
    }
}

@Suite struct IPAddressTextTests {
    @Test(arguments: ["10.0.0.1", "0.0.0.0", "255.255.255.255", "192.0.2.10"])
    func acceptsDottedQuads(_ text: String) {
        #expect(IPAddressText.canonical(text)?.text == text)
        #expect(IPAddressText.canonical(text)?.family == .v4)
    }

    @Test(arguments: ["10.0.0", "10.0.0.1.2", "10.0.0.256", "10.0.0.01", "10..0.1", ".10.0.0.1", "10.0.0.1.", "1a.0.0.1", "", "1000.0.0.1", "10.0.0.-1"])
    func rejectsEverythingElse(_ text: String) {
        #expect(IPAddressText.canonical(text) == nil, "\(text)")
    }

    @Test func canonicalisesIPv6() {
        #expect(IPAddressText.canonical("FD00:0:0::0010")?.text == "fd00::10")
        #expect(IPAddressText.canonical("fd00::10")?.family == .v6)
    }
}
