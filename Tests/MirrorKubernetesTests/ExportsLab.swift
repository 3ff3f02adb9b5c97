import Foundation
import Logging
import MirrorModel
import NIOConcurrencyHelpers
@testable import MirrorKubernetes

/// One emulated cluster exporting its own Services (`feed --exports kubernetes`): the
/// Services, their EndpointSlices and the allocation record, plus allocators and exports
/// sources under test, each with its own client as separate feed replicas would have.
final class ExportsLab: Sendable {
    static let namespace = "mirror-agent"
    static let configMapsPath = "/api/v1/namespaces/mirror-agent/configmaps"
    static let annotation = "mirror-agent.io/gateway-ports"

    let server: KMockServer
    /// The test's own client (to look at what the allocators wrote).
    let client: KubeClient

    init(server: KMockServer) throws {
        self.server = server
        client = try Fixtures.client(server)
    }

    static func with(_ body: (ExportsLab) async throws -> Void) async throws {
        try await withKMock { server in
            let lab = try ExportsLab(server: server)
            do {
                try await body(lab)
            } catch {
                try? await lab.client.shutdown()
                throw error
            }
            try? await lab.client.shutdown()
        }
    }

    // MARK: Objects

    static var http: [String: Any] { ["name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080] }

    @discardableResult
    func addService(_ name: String, namespace: String = "default", labels: [String: String] = Fixtures.exported,
                    ports: [[String: Any]] = [ExportsLab.http], annotations: [String: String]? = nil) async throws -> [String: Any] {
        var object = SourceLab.service(name, namespace: namespace, labels: labels, ports: ports)
        if let annotations, var metadata = object["metadata"] as? [String: Any] {
            metadata["annotations"] = annotations
            object["metadata"] = metadata
        }
        return try await server.create(SourceLab.servicesPath(namespace), object)
    }

    func servicePath(_ name: String, namespace: String = "default") -> String { SourceLab.servicesPath(namespace) + "/" + name }

    func addSlice(_ name: String, service: String, namespace: String = "default", ports: [[String: Any]],
                  endpoints: [(ip: String, ready: Bool)]) async throws {
        try await server.create("/apis/discovery.k8s.io/v1/namespaces/\(namespace)/endpointslices", [
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": ["name": name, "namespace": namespace, "labels": ["kubernetes.io/service-name": service]],
            "ports": ports,
            "endpoints": endpoints.map { ["addresses": [$0.ip], "conditions": ["ready": $0.ready]] },
        ])
    }

    func slicePath(_ name: String, namespace: String = "default") -> String {
        "/apis/discovery.k8s.io/v1/namespaces/\(namespace)/endpointslices/\(name)"
    }

    /// The exported Services, as an informer would list them.
    func exported() async throws -> [KubeService] {
        try await client.listAll(KubeService.self, labelSelector: "mirror.linkerd.io/exported=true").items
    }

    func service(_ name: String, namespace: String = "default") async throws -> KubeService? {
        do {
            return try await client.get(KubeService.self, namespace: namespace, name: name)
        } catch KubeError.notFound {
            return nil
        }
    }

    /// The raw annotation text of a Service (nil: none, or no such Service).
    func annotationText(_ name: String, namespace: String = "default") async throws -> String? {
        try await service(name, namespace: namespace)?.metadata.annotations?[Self.annotation]
    }

    /// The annotation as port key → gateway port (empty when absent).
    func gatewayPorts(_ name: String, namespace: String = "default") async throws -> [String: Int] {
        Self.parse(try await annotationText(name, namespace: namespace))
    }

    static func parse(_ text: String?) -> [String: Int] {
        var result: [String: Int] = [:]
        for entry in (text ?? "").split(separator: ",") {
            let parts = entry.split(separator: "=")
            if parts.count == 2, let port = Int(parts[1]) { result[String(parts[0])] = port }
        }
        return result
    }

    /// The allocation record's ConfigMap data, or nil when it does not exist.
    func recordData() async throws -> [String: String]? {
        do {
            return try await client.get(KubeConfigMap.self, namespace: Self.namespace, name: GatewayPortRecord.defaultName).data ?? [:]
        } catch KubeError.notFound {
            return nil
        }
    }

    /// The record's allocations: gateway port → `namespace/name/key` (uids left out).
    func allocations() async throws -> [Int: String] {
        var result: [Int: String] = [:]
        for (key, value) in try await recordData() ?? [:] {
            guard let port = Int(key) else { continue }
            result[port] = String(value.split(separator: " ").first ?? "")
        }
        return result
    }

    /// The writes the server received (POST, PUT, PATCH, DELETE), as `METHOD path`.
    func writes() async throws -> [String] {
        try await server.requests().filter { $0.method != "GET" }.map { "\($0.method) \($0.path)" }
    }

    // MARK: Allocators and sources

    /// An allocator with its own client (call `shutdown` on the client when done).
    func allocator(range: GatewayPortRange = .default) throws -> (GatewayPortAllocator, KubeClient) {
        let client = try Fixtures.client(server)
        var options = GatewayPortAllocator.Options(namespace: Self.namespace)
        options.range = range
        return (GatewayPortAllocator(client: client, options: options, logger: Fixtures.logger), client)
    }

    /// One allocation pass by a fresh allocator over the exported Services as listed now.
    @discardableResult
    func allocate(range: GatewayPortRange = .default) async throws -> GatewayPortAllocator {
        let (allocator, client) = try allocator(range: range)
        return try await using(client) { _ in
            try await allocator.reconcile(try await exported())
            return allocator
        }
    }

    final class Running: Sendable {
        let source: KubernetesExportsSource
        let client: KubeClient
        private let documents = NIOLockedValueBox<[ExportsDocument]>([])
        private let task: NIOLockedValueBox<Task<Void, Never>?> = NIOLockedValueBox(nil)

        init(_ lab: ExportsLab, configure: (inout KubernetesExportsOptions) -> Void) throws {
            client = try Fixtures.client(lab.server)
            var options = KubernetesExportsOptions(cluster: "paris", gatewayAddresses: ["192.0.2.10"], namespace: ExportsLab.namespace)
            options.coalescing = .milliseconds(10)
            options.resyncInterval = .seconds(1)
            options.retryBackoff = RetryBackoff(initial: .milliseconds(50), maximum: .milliseconds(300))
            options.informer.backoff = RetryBackoff(initial: .milliseconds(50), maximum: .milliseconds(300))
            options.informer.watchTimeout = 60...60
            configure(&options)
            source = try KubernetesExportsSource(client: client, options: options, logger: Fixtures.logger)
            let source = source, documents = documents
            task.withLockedValue {
                $0 = Task { try? await source.run { document in documents.withLockedValue { $0.append(document) } } }
            }
        }

        var published: [ExportsDocument] { documents.withLockedValue { $0 } }
        /// The last published document, or nil.
        var document: ExportsDocument? { documents.withLockedValue { $0.last } }

        func export(_ name: String, namespace: String = "default") -> ExportedService? {
            document?.exports.first { $0.name == name && $0.namespace == namespace }
        }

        func stop() async {
            let task = task.withLockedValue { $0 }
            task?.cancel()
            await task?.value
            try? await client.shutdown()
        }
    }

    func start(configure: (inout KubernetesExportsOptions) -> Void = { _ in }) throws -> Running {
        try Running(self, configure: configure)
    }
}
