import Foundation
import Testing
@testable import MirrorModel
@testable import MirrorFeed

@Suite struct StateEncodingTests {
    @Test func yamlToJSONAndBackIsLossless() throws {
        let fromYAML = try MirrorState(parsing: validYAML)
        let json = try fromYAML.canonicalJSON()
        let decoded = try JSONDecoder().decode(MirrorState.self, from: json)
        #expect(decoded == fromYAML)
        // The JSON form is also a valid state document for the file reader.
        let reread = try MirrorState(parsing: String(decoding: json, as: UTF8.self))
        #expect(reread == fromYAML)
    }

    @Test func canonicalJSONIsDeterministic() throws {
        let state = try MirrorState(parsing: validYAML)
        let first = try state.canonicalJSON()
        let second = try JSONDecoder().decode(MirrorState.self, from: first).canonicalJSON()
        #expect(first == second)
        let text = String(decoding: first, as: UTF8.self)
        #expect(text.hasPrefix("{\"clusterDomain\":\"cluster.local\",\"clusters\":["), "keys are sorted: \(text.prefix(60))")
    }

    @Test func jsonDefaultsMatchYAMLDefaults() throws {
        let json = #"{"clusters":[{"name":"p","gateway":{"addresses":["192.0.2.1"]}}],"services":[{"name":"s","namespace":"n","cluster":"p","mode":"gateway","ips":["10.0.0.1"],"ports":[{"port":80}]}]}"#
        let viaCodable = try JSONDecoder().decode(MirrorState.self, from: Data(json.utf8))
        let viaReader = try MirrorState(parsing: json)
        #expect(viaCodable == viaReader)
        #expect(viaReader.clusterDomain == "cluster.local")
        #expect(viaReader.clusters[0].gateway?.port == 4143)
        #expect(viaReader.services[0].ports[0] == ServicePort(protocol: .tcp, port: 80, targetPort: 80))
    }

    @Test func jsonTypeErrorsAreNamed() {
        let found = issues(of: #"{"clusters":[{"name":"p","masquerade":"yes"}]}"#)
        #expect(found.map(\.description) == ["clusters[0] p: masquerade: must be true or false, got a string"])
    }
}
