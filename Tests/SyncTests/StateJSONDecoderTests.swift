import Foundation
import Testing
@testable import MirrorModel
@testable import MirrorFeed

/// The one-pass JSON decoder must agree with the strict `Codable` form on every document it
/// accepts, and decline (so the explaining readers run) everything else.
@Suite struct StateJSONDecoderTests {
    /// What the strict `Codable` decode makes of `json`, or nil when it refuses it.
    private func viaCodable(_ json: String) -> MirrorState? {
        let decoder = JSONDecoder()
        decoder.userInfo[.strictMirrorState] = true
        return try? decoder.decode(MirrorState.self, from: Data(json.utf8))
    }

    private func viaFastPath(_ json: String) -> MirrorState? {
        var text = json
        return text.withUTF8 { StateJSONDecoder.decode($0) }
    }

    @Test func agreesWithCodableOnTheFixture() throws {
        for pretty in [false, true] {
            let json = String(decoding: try MirrorState(parsing: validYAML).canonicalJSON(pretty: pretty), as: UTF8.self)
            let fast = try #require(viaFastPath(json))
            #expect(fast == viaCodable(json))
            #expect(fast == (try MirrorState(parsing: validYAML)))
        }
    }

    static let accepted: [String] = [
        #"{}"#,
        #" { "clusterDomain" : null , "clusters" : null , "services" : null } "#,
        #"{"clusters":[{"name":"p","gateway":null,"masquerade":null}]}"#,
        #"{"clusters":[{"name":"p","gateway":{"addresses":["192.0.2.1"],"port":null,"identity":null,"alive":null}}]}"#,
        #"{"services":[{"name":"s","namespace":"n","cluster":null,"mode":"federated","ips":[],"ports":null,"endpoints":null}]}"#,
        #"{"services":[{"name":"s","namespace":"n","mode":"gateway","ips":["10.0.0.1"],"ports":[{"name":null,"protocol":null,"port":80,"targetPort":null,"gatewayPort":null}]}]}"#,
        #"{"services":[{"name":"s","namespace":"n","mode":"remote-discovery","ips":[],"endpoints":[{"ip":"10.1.0.1","ready":null,"hostname":null,"cluster":null},{"ip":"10.1.0.2","ready":false}]}]}"#,
        #"{"clusterDomain":"caf\u00e9.\"q\"\\\/\b\f\n\r\t \ud83d\ude00 ünï"}"#,
        #"{"services":[{"name":"s","namespace":"n","mode":"gateway","ips":[],"ports":[{"port":-0},{"port":-12},{"port":9223372036854775807}]}]}"#,
    ]

    @Test(arguments: accepted)
    func acceptsWhatCodableAccepts(_ json: String) throws {
        let expected = try #require(viaCodable(json), "Codable must accept the test document")
        #expect(viaFastPath(json) == expected)
    }

    static let declined: [String] = [
        #"{"clusterDomain":"a","clusterDomain":"b"}"#,                // repeated key
        #"{"clusterDomian":"a"}"#,                                       // unknown field
        #"{"services":[{"name":"s","namespace":"n","mode":"gateway","ips":[],"ports":[{"port":80.0}]}]}"#,
        #"{"services":[{"name":"s","namespace":"n","mode":"gateway","ips":[],"ports":[{"port":8e1}]}]}"#,
        #"{"services":[{"name":"s","namespace":"n","mode":"gateway","ips":[],"ports":[{"port":080}]}]}"#,
        #"{"services":[{"name":"s","namespace":"n","mode":"gateway","ips":[],"ports":[{"port":99999999999999999999}]}]}"#,
        #"{"services":[{"name":"s","namespace":"n","mode":"flat","ips":[]}]}"#,
        #"{"services":[{"name":"s","namespace":"n","mode":"gateway","ips":null}]}"#,
        #"{"services":[{"name":"s","namespace":"n","mode":"gateway"}]}"#,
        #"{"clusters":[{"name":null}]}"#,
        #"{"clusters":[{"name":"p","masquerade":"yes"}]}"#,
        #"{"clusters":[{"name":"p","masquerade":truex}]}"#,
        #"{"clusterDomain":"\ud83d"}"#,                                  // lone surrogate
        #"{"clusterDomain":"a\u00"}"#,
        "{\"clusterDomain\":\"tab\tinside\"}",                           // raw control character
        #"{"cl\u0075sters":[]}"#,                                        // escaped key
        #"{"clusters":[],}"#,
        #"{"clusters":[,]}"#,
        #"{"clusters":[]} x"#,
        #"{"clusters":[]"#,
        #"["#,
    ]

    @Test(arguments: declined)
    func declinesTheRest(_ json: String) {
        #expect(viaFastPath(json) == nil)
    }

    @Test func declinedDocumentsStillGetTheirExplanations() {
        let found = issues(of: #"{"clusters":[{"name":"p","masquerade":"yes","gatway":{}}]}"#)
        #expect(found.map(\.description) == [
            "clusters[0] p: masquerade: must be true or false, got a string",
            "clusters[0] p: gatway: unknown field (check the spelling)",
        ])
    }

    @Test func fileThatIsNotUTF8IsRefusedAsBefore() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("state-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var bytes = Array(#"{"clusterDomain":"x"#.utf8)
        bytes += [0xC3, 0x28]   // an invalid two-byte sequence inside a string
        bytes += Array(#""}"#.utf8)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect {
            try MirrorState(contentsOf: path)
        } throws: { error in
            (error as? StateFileError)?.reason == "not UTF-8 text"
        }
    }

    @Test func bigJSONFileLoadsLikeCodable() throws {
        var services: [MirroredService] = []
        for i in 0..<300 {
            let ip = "10.1.\(i / 256).\(i % 256)"
            services.append(i % 10 == 0
                ? MirroredService(name: "svc-\(i)", namespace: "namespace-with-a-long-name", cluster: "berlin", mode: .remoteDiscovery, ips: [ip],
                                  ports: [ServicePort(port: 80, targetPort: 8080)],
                                  endpoints: [Endpoint(ip: "10.2.0.\(i % 250)", hostname: "pod-\(i)", cluster: "berlin")])
                : MirroredService(name: "svc-\(i)", namespace: "namespace-with-a-long-name", cluster: "paris", mode: .gateway, ips: [ip],
                                  ports: [ServicePort(name: "http", port: 80)]))
        }
        let state = MirrorState(clusters: [Cluster(name: "paris", gateway: Gateway(addresses: ["192.0.2.1"])),
                                           Cluster(name: "berlin", gateway: Gateway(addresses: ["192.0.2.2"]))],
                                services: services)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("state-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try state.canonicalJSON().write(to: URL(fileURLWithPath: path))
        #expect(try MirrorState(contentsOf: path) == state)
    }
}
