import Foundation
import MirrorModel
import Testing
@testable import MirrorKubernetes

/// `feed --exports kubernetes`: the exports document built from this cluster's exported
/// Services, the allocation record and the EndpointSlices, against the emulated API server.
@Suite(.serialized)
struct KubernetesExportsSourceTests {
    static var webPorts: [[String: Any]] {
        [["name": "http", "protocol": "TCP", "port": 80, "targetPort": "web"],
         ["name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": 9090]]
    }
    static var slicePorts: [[String: Any]] {
        [["name": "http", "protocol": "TCP", "port": 8080],
         ["name": "metrics", "protocol": "TCP", "port": 9090]]
    }

    @Test func documentHasTheGatewayPortsTargetPortsAndReadyEndpointsAndFollowsTheSlices() async throws {
        try await ExportsLab.with { lab in
            try await lab.addService("bar", ports: Self.webPorts)
            try await lab.addSlice("bar-1", service: "bar", ports: Self.slicePorts,
                                   endpoints: [("10.20.0.5", true), ("10.20.0.6", false)])
            // Not exported: neither allocated nor published.
            try await lab.addService("private", labels: [:])
            let feed = try lab.start()

            #expect(await eventually { feed.export("bar")?.ports.count == 2 })
            let document = try #require(feed.document)
            #expect(document.cluster == "paris")
            #expect(document.gatewayAddresses == ["192.0.2.10"])
            #expect(document.exports.map(\.name) == ["bar"])
            let annotation = try await lab.gatewayPorts("bar")
            let bar = try #require(feed.export("bar"))
            let http = try #require(bar.ports.first { $0.name == "http" })
            #expect(http.protocol == .tcp && http.port == 80)
            #expect(http.targetPort == 8080)  // the named targetPort "web", resolved from the slice
            #expect(http.gatewayPort == annotation["http"])
            let metrics = try #require(bar.ports.first { $0.name == "metrics" })
            #expect(metrics.port == 9090 && metrics.targetPort == 9090 && metrics.gatewayPort == annotation["metrics"])
            #expect(bar.endpoints == [ExportEndpoint(ip: "10.20.0.5", ready: true)])
            // What a gateway accepts with its own range.
            #expect(throws: Never.self) { try document.validated(gatewayPorts: .default) }
            #expect(try await lab.annotationText("private") == nil)

            // An endpoint becomes ready, another slice appears: the document follows.
            try await lab.server.patch(lab.slicePath("bar-1"), ["endpoints": [
                ["addresses": ["10.20.0.5"], "conditions": ["ready": true]],
                ["addresses": ["10.20.0.6"], "conditions": ["ready": true]]]])
            #expect(await eventually { feed.export("bar")?.endpoints.map(\.ip) == ["10.20.0.5", "10.20.0.6"] })
            try await lab.addSlice("bar-2", service: "bar", ports: Self.slicePorts, endpoints: [("10.20.1.7", true)])
            #expect(await eventually { feed.export("bar")?.endpoints.map(\.ip) == ["10.20.0.5", "10.20.0.6", "10.20.1.7"] })
            // Pods moved to another container port: the target port follows; the gateway port stays.
            for slice in ["bar-1", "bar-2"] {
                try await lab.server.patch(lab.slicePath(slice), ["ports": [
                    ["name": "http", "protocol": "TCP", "port": 8081], ["name": "metrics", "protocol": "TCP", "port": 9090]]])
            }
            #expect(await eventually { feed.export("bar")?.ports.first { $0.name == "http" }?.targetPort == 8081 })
            #expect(feed.export("bar")?.ports.first { $0.name == "http" }?.gatewayPort == annotation["http"])
            // Slice deleted: its endpoints go.
            try await lab.server.delete(lab.slicePath("bar-2"))
            #expect(await eventually { feed.export("bar")?.endpoints.map(\.ip) == ["10.20.0.5", "10.20.0.6"] })
            #expect(feed.source.status.published)
            #expect(feed.source.status.exportedPorts == 2)
            await feed.stop()
        }
    }

    @Test func servicesComeAndGoWhileRunning() async throws {
        try await ExportsLab.with { lab in
            let feed = try lab.start()
            #expect(await eventually { feed.document != nil })
            #expect(feed.document?.exports.isEmpty == true)

            // Exported at run time: allocated, annotated, published.
            try await lab.addService("cart", namespace: "shop", ports: [["name": "grpc", "protocol": "TCP", "port": 9000, "targetPort": 9000]])
            #expect(await eventually { feed.export("cart", namespace: "shop")?.ports.first?.gatewayPort != nil })
            let port = try #require(feed.export("cart", namespace: "shop")?.ports.first?.gatewayPort)
            #expect(try await lab.gatewayPorts("cart", namespace: "shop") == ["grpc": port])

            // Unexported: out of the document, its port kept.
            try await lab.server.patch(lab.servicePath("cart", namespace: "shop"),
                                       ["metadata": ["labels": ["mirror.linkerd.io/exported": NSNull()]]])
            #expect(await eventually { feed.export("cart", namespace: "shop") == nil })
            #expect(try await lab.allocations()[port] == "shop/cart/grpc")
            // Exported again: the same port.
            try await lab.server.patch(lab.servicePath("cart", namespace: "shop"),
                                       ["metadata": ["labels": ["mirror.linkerd.io/exported": "true"]]])
            #expect(await eventually { feed.export("cart", namespace: "shop")?.ports.first?.gatewayPort == port })

            // Unexported, then deleted: freed by the periodic pass (no exported Service changed).
            try await lab.server.patch(lab.servicePath("cart", namespace: "shop"),
                                       ["metadata": ["labels": ["mirror.linkerd.io/exported": NSNull()]]])
            #expect(await eventually { feed.export("cart", namespace: "shop") == nil })
            try await lab.server.delete(lab.servicePath("cart", namespace: "shop"))
            #expect(await eventually { (try? await lab.allocations())?[port] == nil })
            await feed.stop()
        }
    }

    @Test func anUnreachableAPIServerKeepsTheLastDocumentAndIsReported() async throws {
        try await ExportsLab.with { lab in
            try await lab.addService("bar")
            let feed = try lab.start()
            #expect(await eventually { feed.export("bar")?.ports.first?.gatewayPort != nil })
            let document = try #require(feed.document)
            let count = feed.published.count
            await lab.server.kill()
            // The periodic pass fails: reported, retried, nothing else changes.
            #expect(await eventually { feed.source.status.allocator.lastError != nil })
            #expect(feed.document == document)
            #expect(feed.published.count == count)
            #expect(feed.source.allocator.record?.owners.count == 1)
            await feed.stop()
        }
    }

    @Test func problemsAreReportedNamingTheService() async throws {
        try await ExportsLab.with { lab in
            try await lab.addService("odd", annotations: [ExportsLab.annotation: "http=20001,junk"])
            try await lab.addService("bar", ports: [["name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080],
                                                    ["name": "Bad_Name", "protocol": "TCP", "port": 81, "targetPort": 8081]])
            let feed = try lab.start { $0.range = GatewayPortRange(lower: 20000, upper: 20000)! }
            #expect(await eventually { feed.export("bar") != nil })
            let problems = feed.source.status.problems.map(\.description)
            #expect(problems.contains { $0.hasPrefix("Service default/odd: annotation mirror-agent.io/gateway-ports is not readable") })
            #expect(problems.contains { $0.hasPrefix("Service default/bar port Bad_Name:") })
            #expect(feed.export("odd") == nil)
            #expect(try await lab.annotationText("odd") == "http=20001,junk")
            #expect(feed.document?.exports.map(\.name) == ["bar"])

            // The range now full, a new Service is reported, not half-served.
            try await lab.addService("late")
            #expect(await eventually {
                feed.source.status.problems.contains { $0.object == "Service default/late" && $0.message.contains("exhausted") }
            })
            #expect(feed.export("late") == nil)
            #expect(try await lab.annotationText("late") == nil)
            await feed.stop()
        }
    }
}
