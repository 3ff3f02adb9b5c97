import Foundation
import Logging
import NIOConcurrencyHelpers
@testable import MirrorModel
import MirrorFeed
import Testing

/// The exports document of `mirror-agent gateway`: reading, validation and the JSON form.
@Suite struct ExportsDocumentTests {
    static let example = """
        cluster: paris
        gatewayAddresses: ["10.99.1.2"]
        exports:
          - name: bar
            namespace: default
            ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080, gatewayPort: 20001}]
            endpoints: [{ip: 10.20.1.5, ready: true}]
        """

    static let exampleValue = ExportsDocument(cluster: "paris", gatewayAddresses: ["10.99.1.2"], exports: [
        ExportedService(name: "bar", namespace: "default",
                        ports: [ExportedPort(name: "http", protocol: .tcp, port: 80, targetPort: 8080, gatewayPort: 20001)],
                        endpoints: [ExportEndpoint(ip: "10.20.1.5", ready: true)]),
    ])

    /// Two exports, a dual-stack service behind an IPv4-only gateway, one gateway port number
    /// used by both TCP and UDP: all valid. The rules below break it one field at a time.
    static let valid = """
        cluster: paris
        gatewayAddresses: ["10.99.1.2"]
        exports:
          - name: bar
            namespace: default
            ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080, gatewayPort: 20001}]
            endpoints: [{ip: 10.20.1.5, ready: true}, {ip: "fd00:20::5", ready: false}]
          - name: dns
            namespace: kube-system
            ports: [{name: dns, protocol: UDP, port: 53, gatewayPort: 20002}, {name: dns-tcp, port: 53, gatewayPort: 20002}]
            endpoints: [{ip: 10.20.1.6}]
        """

    static func issues(of text: String) -> [String] {
        do {
            _ = try ExportsDocument.parse(text)
            return []
        } catch let error as InvalidExportsError {
            return error.issues.map(\.description)
        } catch {
            return ["unexpected: \(error)"]
        }
    }

    /// `valid` with one substitution, which must occur exactly once.
    static func valid(replacing original: String, with replacement: String) -> String {
        let parts = valid.components(separatedBy: original)
        precondition(parts.count == 2, "substitution \(original) must match once, matched \(parts.count - 1)")
        return parts.joined(separator: replacement)
    }

    @Test func exampleParsesFromYAML() throws {
        #expect(try ExportsDocument.parse(Self.example) == Self.exampleValue)
    }

    @Test func exampleParsesFromJSON() throws {
        let json = """
            {"cluster": "paris", "gatewayAddresses": ["10.99.1.2"], "exports": [{"name": "bar", "namespace": "default",
              "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "gatewayPort": 20001}],
              "endpoints": [{"ip": "10.20.1.5", "ready": true}]}]}
            """
        #expect(try ExportsDocument.parse(json) == Self.exampleValue)
    }

    @Test func defaultsAndDualStackEndpoints() throws {
        let document = try ExportsDocument.parse(Self.valid)
        let dns = document.exports[1]
        #expect(dns.key == "kube-system/dns")
        #expect(dns.ports[1].protocol == .tcp, "protocol defaults to TCP")
        #expect(dns.ports[1].targetPort == 53, "targetPort defaults to port")
        #expect(dns.endpoints[0].ready, "ready defaults to true")
        #expect(document.exports[0].endpoints[1].ip == "fd00:20::5", "an IPv6 endpoint behind an IPv4 gateway is accepted")
    }

    @Test func addressesAreCanonicalised() throws {
        let document = try ExportsDocument.parse(Self.valid
            .replacingOccurrences(of: "[\"10.99.1.2\"]", with: "[\"10.99.1.2\", \"FD00:99:0::0002\"]")
            .replacingOccurrences(of: "\"fd00:20::5\"", with: "\"FD00:20:0:0::5\""))
        #expect(document.gatewayAddresses == ["10.99.1.2", "fd00:99::2"])
        #expect(document.exports[0].endpoints[1].ip == "fd00:20::5")
    }

    /// (original, replacement, the one issue expected).
    static let rules: [(String, String, String)] = [
        ("namespace: default", "namespace: default\n    nmae: x", "exports[0] default/bar: nmae: unknown field (check the spelling)"),
        ("exports:", "expotrs: []\nexports:", "document: expotrs: unknown field (check the spelling)"),
        ("port: 80,", "port: \"80\",", "exports[0] default/bar: ports[0].port: must be an integer, got a string"),
        ("ready: true}", "ready: yes please}", "exports[0] default/bar: endpoints[0].ready: must be true or false, got a string"),
        (", gatewayPort: 20001}", "}", "exports[0] default/bar: ports[0].gatewayPort: required field is missing"),
        ("cluster: paris\n", "", "document: cluster: required field is missing (this cluster's name)"),
        ("targetPort: 8080", "targetPort: 70000", "exports[0] default/bar: ports[0].targetPort: must be between 1 and 65535, got 70000"),
        ("gatewayPort: 20001", "gatewayPort: 30001", "exports[0] default/bar: ports[0].gatewayPort: 30001 is outside the gateway port range 20000-29999"),
        ("gatewayPort: 20001", "gatewayPort: 0", "exports[0] default/bar: ports[0].gatewayPort: must be between 1 and 65535, got 0"),
        ("protocol: UDP", "protocol: ICMP", "exports[1] kube-system/dns: ports[0].protocol: unknown protocol \"ICMP\"; expected TCP, UDP or SCTP"),
        ("{name: dns-tcp, port: 53, gatewayPort: 20002}", "{name: dns-tcp, port: 53, gatewayPort: 20001}",
         "exports[1] kube-system/dns: ports[1].gatewayPort: 20001/TCP is already used by exports[0] default/bar ports[0]"),
        ("name: dns-tcp", "name: dns", "exports[1] kube-system/dns: ports[1].name: duplicate port name \"dns\""),
        ("[\"10.99.1.2\"]", "[\"10.99.1.300\"]", "document: gatewayAddresses[0]: \"10.99.1.300\" is not an IP address"),
        ("[\"10.99.1.2\"]", "[\"10.99.1.2\", \"10.99.1.2\"]", "document: gatewayAddresses[1]: duplicate gateway address 10.99.1.2"),
        ("[\"10.99.1.2\"]", "[]", "document: gatewayAddresses: at least one gateway address is required"),
        ("{ip: 10.20.1.6}", "{ip: 10.20.1.6}, {ip: 10.20.1.6, ready: false}", "exports[1] kube-system/dns: endpoints[1].ip: duplicate endpoint 10.20.1.6"),
        ("{ip: 10.20.1.6}", "{ip: pod-1}", "exports[1] kube-system/dns: endpoints[0].ip: \"pod-1\" is not an IP address"),
        ("name: dns\n    namespace: kube-system", "name: bar\n    namespace: default",
         "exports[1] default/bar: name: duplicate export default/bar, also defined as exports[0] default/bar"),
        ("cluster: paris", "cluster: Paris", "document: cluster: \"Paris\" is not a DNS label (lowercase letters, digits and '-', at most 63)"),
        ("namespace: kube-system", "namespace: kube_system",
         "exports[1] kube_system/dns: namespace: \"kube_system\" is not a DNS label (lowercase letters, digits and '-', at most 63)"),
    ]

    @Test(arguments: 0..<rules.count)
    func eachRuleGivesItsIssue(_ index: Int) {
        let (original, replacement, expected) = Self.rules[index]
        #expect(Self.issues(of: Self.valid(replacing: original, with: replacement)) == [expected])
    }

    @Test func oneGatewayPortNumberServesTCPAndUDP() {
        let text = Self.valid(replacing: "protocol: UDP, port: 53, gatewayPort: 20002", with: "protocol: UDP, port: 53, gatewayPort: 20001")
        #expect(Self.issues(of: text) == [])
    }

    @Test func everyProblemIsListedAtOnceInDocumentOrder() {
        let text = """
            cluster: Paris
            gatewayAddresses: ["gw.paris"]
            exports:
              - name: bar
                namespace: default
                ports: [{port: 80, gatewayPort: 40000}, {port: eighty, gatewayPort: 20001}]
              - name: baz
                namespace: default
                ports: [{port: 80, gatewayPort: 20003, colour: blue}, {port: 81, protocol: TCP, gatewayPort: 20003}]
                endpoints: [{ip: 10.20.1.5}, {ip: "10.20.1.05"}]
            extra: 1
            """
        #expect(Self.issues(of: text) == [
            "document: extra: unknown field (check the spelling)",
            "document: cluster: \"Paris\" is not a DNS label (lowercase letters, digits and '-', at most 63)",
            "document: gatewayAddresses[0]: \"gw.paris\" is not an IP address",
            "exports[0] default/bar: ports[1].port: must be an integer, got a string",
            "exports[0] default/bar: ports[0].gatewayPort: 40000 is outside the gateway port range 20000-29999",
            "exports[1] default/baz: ports[0].colour: unknown field (check the spelling)",
            "exports[1] default/baz: ports[1].gatewayPort: 20003/TCP is already used by exports[1] default/baz ports[0]",
            "exports[1] default/baz: endpoints[1].ip: \"10.20.1.05\" is not an IP address",
        ])
    }

    /// Valid JSON takes a faster decoder; it must be just as strict as the reader.
    @Test func jsonIsAsStrictAsYAML() throws {
        let valid = #"{"cluster":"paris","gatewayAddresses":["10.99.1.2"],"exports":[{"name":"bar","namespace":"default","ports":[{"port":80,"targetPort":8080,"gatewayPort":20001}],"endpoints":[{"ip":"10.20.1.5"}]}]}"#
        let document = try ExportsDocument.parse(valid)
        #expect(document.exports.first?.ports.first?.protocol == .tcp && document.exports.first?.endpoints.first?.ready == true)
        #expect(Self.issues(of: valid.replacingOccurrences(of: #""targetPort":8080"#, with: #""targetPort":8080,"colour":"blue""#))
                == ["exports[0] default/bar: ports[0].colour: unknown field (check the spelling)"])
        #expect(Self.issues(of: valid.replacingOccurrences(of: "20001", with: "40001"))
                == ["exports[0] default/bar: ports[0].gatewayPort: 40001 is outside the gateway port range 20000-29999"])
        #expect(Self.issues(of: valid.replacingOccurrences(of: #""cluster":"paris","#, with: ""))
                == ["document: cluster: required field is missing (this cluster's name)"])
    }

    /// The fast decoder reads exactly what the reader reads, and declines what it must explain.
    @Test func theFastJSONDecoderAgreesWithTheReader() throws {
        let json = #"{"cluster":"paris","gatewayAddresses":["10.99.1.2"],"exports":[{"name":"bar","namespace":"default","ports":[{"name":"dns","protocol":"UDP","port":53,"targetPort":5353,"gatewayPort":20001},{"port":80,"gatewayPort":20002,"targetPort":null}],"endpoints":[{"ip":"10.20.1.5"},{"ip":"10.20.1.6","ready":false}]}]}"#
        let yaml = """
            cluster: paris
            gatewayAddresses: [10.99.1.2]
            exports:
              - name: bar
                namespace: default
                ports: [{name: dns, protocol: UDP, port: 53, targetPort: 5353, gatewayPort: 20001}, {port: 80, gatewayPort: 20002}]
                endpoints: [{ip: 10.20.1.5}, {ip: 10.20.1.6, ready: false}]
            """
        func fast(_ text: String) -> ExportsDocument? {
            Array(text.utf8).withUnsafeBufferPointer { StateJSONDecoder.decodeExports($0) }
        }
        #expect(fast(json) == (try ExportsDocument.parse(yaml)))
        #expect(fast(json.replacingOccurrences(of: #""port":80"#, with: #""port":80,"colour":"blue""#)) == nil, "unknown field")
        #expect(fast(json.replacingOccurrences(of: #","gatewayPort":20002"#, with: "")) == nil, "gatewayPort is required")
        #expect(fast(json.replacingOccurrences(of: #""cluster":"paris","#, with: #""cluster":"paris","cluster":"paris","#)) == nil, "repeated field")
    }

    @Test func aNonMapExportIsReportedOnce() {
        #expect(Self.issues(of: "cluster: paris\ngatewayAddresses: [10.99.1.2]\nexports: [bar]")
                == ["exports[0]: must be a map, got a string"])
        #expect(Self.issues(of: "cluster: paris\ngatewayAddresses: [10.99.1.2]\nexports: [{namespace: default, ports: []}]")
                == ["exports[0]: name: required field is missing"])
    }

    @Test func gatewayPortsFollowTheGivenRange() throws {
        let range = try #require(GatewayPortRange(parsing: "20001-20002"))
        #expect(try ExportsDocument.parse(Self.valid, gatewayPorts: range).exports.count == 2)
        #expect(throws: InvalidExportsError.self) { try ExportsDocument.parse(Self.valid, gatewayPorts: #require(GatewayPortRange(parsing: "20002-20010"))) }
    }

    @Test func syntaxErrorsAreNotValidationErrors() {
        #expect(throws: DocumentSyntaxError.self) { try ExportsDocument.parse("exports: [unclosed") }
        #expect(throws: DocumentSyntaxError.self) { try ExportsDocument.parse("{\"exports\": [}") }
    }

    @Test func errorDescriptionListsEveryIssue() {
        let error = InvalidExportsError(issues: [
            ValidationIssue(object: "document", field: "cluster", message: "a"),
            ValidationIssue(object: "exports[0] default/bar", field: "", message: "b"),
        ])
        #expect(error.description == "invalid exports document (2 problems):\n  - document: cluster: a\n  - exports[0] default/bar: b")
    }

    @Test func jsonIsSortedWithoutNilsAndRoundTrips() throws {
        var document = try ExportsDocument.parse(Self.valid)
        document.exports[1].ports[0].name = nil
        let data = try document.jsonData()
        #expect(try document.jsonData() == data, "equal documents give equal bytes")
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("{\"gatewayPort\":20002,\"port\":53,\"protocol\":\"UDP\",\"targetPort\":53}"), "\(text)")
        #expect(text.hasPrefix("{\"cluster\":\"paris\",\"exports\":["))
        #expect(try ExportsDocument.parse(text) == document)
        #expect(try JSONDecoder().decode(ExportsDocument.self, from: data) == document)
    }

    @Test func decodedDocumentsAreValidatedAndCanonicalised() throws {
        let json = #"{"cluster": "paris", "gatewayAddresses": ["FD00::2"], "exports": [{"name": "bar", "namespace": "default", "ports": [{"port": 80, "gatewayPort": 20001}]}]}"#
        let decoded = try JSONDecoder().decode(ExportsDocument.self, from: Data(json.utf8))
        #expect(decoded.exports[0].ports[0] == ExportedPort(port: 80, targetPort: 80, gatewayPort: 20001), "decoding fills the document defaults")
        #expect(try decoded.validated().gatewayAddresses == ["fd00::2"])

        var clash = decoded
        clash.exports.append(ExportedService(name: "baz", namespace: "default", ports: [ExportedPort(port: 81, gatewayPort: 20001)]))
        #expect(throws: InvalidExportsError(issues: [ValidationIssue(
            object: "exports[1] default/baz", field: "ports[0].gatewayPort",
            message: "20001/TCP is already used by exports[0] default/bar ports[0]")])) { try clash.validated() }
    }

    @Test func gatewayPortRange() {
        #expect(GatewayPortRange.default.lower == 20000 && GatewayPortRange.default.upper == 29999)
        #expect(GatewayPortRange(parsing: GatewayPortRange.default.description) == .default)
        #expect(GatewayPortRange(parsing: " 100 - 200 ")?.contains(200) == true)
        #expect(GatewayPortRange(parsing: "100-200")?.contains(201) == false)
        for bad in ["200-100", "0-10", "1-65536", "20000", "a-b", "-1-5", ""] {
            #expect(GatewayPortRange(parsing: bad) == nil, "\(bad)")
        }
    }
}

/// The exports file as a source, laid out as a Kubernetes ConfigMap volume: the file is a
/// symlink through `..data`, which an update swaps by renaming a new symlink over it.
@Suite struct ExportsSourceTests {
    /// A ConfigMap-style directory whose `exports.yaml` currently reads `content`.
    struct ConfigMapDirectory {
        let root: URL
        private var version = 0

        init() throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("exports-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("exports.yaml").path, withDestinationPath: "..data/exports.yaml")
        }

        var file: String { root.appendingPathComponent("exports.yaml").path }

        /// Publishes `content` as the kubelet does: a new timestamped directory, then an atomic
        /// rename of a fresh `..data` symlink over the old one.
        mutating func publish(_ content: String) throws {
            version += 1
            let directory = root.appendingPathComponent("..v\(version)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false)
            try content.write(to: directory.appendingPathComponent("exports.yaml"), atomically: false, encoding: .utf8)
            let staging = root.appendingPathComponent("..data_tmp").path
            try FileManager.default.createSymbolicLink(atPath: staging, withDestinationPath: "..v\(version)")
            try #require(rename(staging, root.appendingPathComponent("..data").path) == 0)
        }

        func remove() { try? FileManager.default.removeItem(at: root) }
    }

    static func document(endpoint: String) -> String {
        ExportsDocumentTests.example.replacingOccurrences(of: "10.20.1.5", with: endpoint)
    }

    /// Polls `condition` every 10 ms for at most 10 s.
    static func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            try #require(ContinuousClock.now < deadline, "not within 10 s: \(what)")
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test("ConfigMap swaps are seen without the poll; a bad one is refused and the last document kept")
    func configMapUpdates() async throws {
        var configMap = try ConfigMapDirectory()
        defer { configMap.remove() }
        try configMap.publish(Self.document(endpoint: "10.20.1.5"))

        let delivered = NIOLockedValueBox<[String]>([])
        let rejected = NIOLockedValueBox<[String]>([])
        let source = FileExportsSource(path: configMap.file, pollInterval: .seconds(3600), logger: Logger(label: "test"),
                                       onRejected: { reason in rejected.withLockedValue { $0.append(reason) } })
        #expect(source.description == "file:\(configMap.file)")
        let task = Task { try await source.run { document in delivered.withLockedValue { $0.append(document.exports[0].endpoints[0].ip) } } }
        defer { task.cancel() }
        try await Self.waitUntil("first delivery") { delivered.withLockedValue { $0.count } == 1 }

        try configMap.publish(Self.document(endpoint: "10.20.1.5").replacingOccurrences(of: "gatewayPort: 20001", with: "gatewayPort: 40001"))
        try await Self.waitUntil("rejection") { rejected.withLockedValue { $0.count } == 1 }
        #expect(rejected.withLockedValue { $0 } == ["""
            invalid exports document (1 problem):
              - exports[0] default/bar: ports[0].gatewayPort: 40001 is outside the gateway port range 20000-29999
            """])

        // The same document respelled is no change; the next real change is delivered after it.
        try configMap.publish(Self.document(endpoint: "10.20.1.5") + "\n# respelled\n")
        try configMap.publish(Self.document(endpoint: "10.20.1.6"))
        try await Self.waitUntil("fixed file delivered") { delivered.withLockedValue { $0.count } >= 2 }
        try await Task.sleep(for: .milliseconds(100))
        #expect(delivered.withLockedValue { $0 } == ["10.20.1.5", "10.20.1.6"])
        #expect(rejected.withLockedValue { $0.count } == 1)
    }

    @Test func anInvalidOrMissingFileFailsTheStart() async throws {
        var configMap = try ConfigMapDirectory()
        defer { configMap.remove() }
        let source = FileExportsSource(path: configMap.file, logger: Logger(label: "test"))
        await #expect(throws: ExportsFileError.self) { try await source.run { _ in } }
        #expect(throws: ExportsFileError.self) { try ExportsDocument.load(path: configMap.file) }
        try configMap.publish("cluster: paris\n")
        await #expect(throws: InvalidExportsError.self) { try await source.run { _ in } }
        #expect(throws: InvalidExportsError.self) { try ExportsDocument.load(path: configMap.file) }
        try configMap.publish(ExportsDocumentTests.example)
        #expect(try ExportsDocument.load(path: configMap.file) == ExportsDocumentTests.exampleValue)
    }
}
