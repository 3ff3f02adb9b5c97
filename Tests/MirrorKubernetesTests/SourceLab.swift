import Foundation
import Logging
import MirrorModel
import NIOConcurrencyHelpers
@testable import MirrorKubernetes

/// Two emulated clusters for the Kubernetes source: `local` (Links, credentials Secrets,
/// mirror Services, the Lease) and `remote` (the exported Services), plus the sources under
/// test, each recording what it publishes.
final class SourceLab: Sendable {
    static let linkNamespace = "mirror-agent"
    static let linksPath = "/apis/multicluster.linkerd.io/v1alpha3/namespaces/mirror-agent/links"
    static let secretsPath = "/api/v1/namespaces/mirror-agent/secrets"

    let local: KMockServer
    let remote: KMockServer
    /// The test's own client of the local cluster (to look at what the source wrote).
    let localClient: KubeClient

    init(local: KMockServer, remote: KMockServer) throws {
        self.local = local
        self.remote = remote
        localClient = try Fixtures.client(local)
    }

    /// Runs `body` with fresh clusters; the local one knows only the namespaces listed.
    static func with(namespaces: [String] = ["mirror-agent", "default", "shop"],
                     _ body: (SourceLab) async throws -> Void) async throws {
        try await withKMock(arguments: ["--namespaces", namespaces.joined(separator: ",")]) { local in
            try await withKMock { remote in
                let lab = try SourceLab(local: local, remote: remote)
                do {
                    try await body(lab)
                } catch {
                    try? await lab.localClient.shutdown()
                    throw error
                }
                try? await lab.localClient.shutdown()
            }
        }
    }

    // MARK: Objects

    /// Linkerd's credentials Secret for `cluster`: a kubeconfig of `server` (plain HTTP).
    func addCredentials(_ cluster: String, server: KMockServer) async throws {
        let kubeconfig = """
            apiVersion: v1
            kind: Config
            clusters:
            - name: \(cluster)
              cluster:
                server: \(server.url.absoluteString)
            users:
            - name: mirror
              user:
                token: remote-token
            contexts:
            - name: \(cluster)
              context: {cluster: \(cluster), user: mirror}
            current-context: \(cluster)
            """
        try await local.create(Self.secretsPath, [
            "apiVersion": "v1", "kind": "Secret", "type": "mirror.linkerd.io/remote-kubeconfig",
            "metadata": ["name": "cluster-credentials-\(cluster)", "namespace": Self.linkNamespace],
            "data": ["kubeconfig": Data(kubeconfig.utf8).base64EncodedString()],
        ])
    }

    func addLink(_ cluster: String, gateway: String = "192.0.2.10", extra: [String: Any] = [:]) async throws {
        var spec: [String: Any] = [
            "targetClusterName": cluster, "targetClusterDomain": "cluster.local",
            "clusterCredentialsSecret": "cluster-credentials-\(cluster)",
            "gatewayAddress": gateway, "gatewayPort": "4143",
            "selector": ["matchLabels": ["mirror.linkerd.io/exported": "true"]],
            "remoteDiscoverySelector": ["matchLabels": ["mirror.linkerd.io/exported": "remote-discovery"]],
        ]
        spec.merge(extra) { $1 }
        try await local.create(Self.linksPath, [
            "apiVersion": "multicluster.linkerd.io/v1alpha3", "kind": "Link",
            "metadata": ["name": cluster, "namespace": Self.linkNamespace], "spec": spec,
        ])
    }

    /// A remote Service (no ClusterIP given: the emulator allocates one).
    static func service(_ name: String, namespace: String = "default", labels: [String: String] = Fixtures.exported,
                        ports: [[String: Any]] = [["name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080]]) -> [String: Any] {
        ["apiVersion": "v1", "kind": "Service",
         "metadata": ["name": name, "namespace": namespace, "labels": labels],
         "spec": ["type": "ClusterIP", "ports": ports]]
    }

    static func servicesPath(_ namespace: String) -> String { "/api/v1/namespaces/\(namespace)/services" }

    /// The local Service `namespace/name`, or nil.
    func localService(_ namespace: String, _ name: String) async throws -> KubeService? {
        do {
            return try await localClient.get(KubeService.self, namespace: namespace, name: name)
        } catch KubeError.notFound {
            return nil
        }
    }

    // MARK: Sources

    final class Running: Sendable {
        let source: KubernetesMirrorSource
        let client: KubeClient
        private let updates = NIOLockedValueBox<[MirrorUpdate]>([])
        private let task: NIOLockedValueBox<Task<Void, Never>?> = NIOLockedValueBox(nil)

        init(_ lab: SourceLab, identity: String, configure: (inout KubernetesSourceOptions) -> Void) throws {
            client = try Fixtures.client(lab.local)
            var options = KubernetesSourceOptions(linkNamespace: SourceLab.linkNamespace, identity: identity)
            options.allowPlainHTTPRemotes = true
            options.coalescing = .milliseconds(10)
            options.leaseDuration = .seconds(2)
            options.initialSyncTimeout = .seconds(3)
            options.informer.backoff = RetryBackoff(initial: .milliseconds(50), maximum: .milliseconds(300))
            options.informer.watchTimeout = 60...60
            configure(&options)
            source = KubernetesMirrorSource(local: client, options: options, logger: Fixtures.logger)
            let source = source, updates = updates
            task.withLockedValue {
                $0 = Task { try? await source.run { update in updates.withLockedValue { $0.append(update) } } }
            }
        }

        var published: [MirrorUpdate] { updates.withLockedValue { $0 } }
        /// The last published state, or nil.
        var state: MirrorState? { updates.withLockedValue { $0.last?.store.state } }

        func service(_ namespace: String, _ name: String) -> MirroredService? {
            state?.services.first { $0.namespace == namespace && $0.mirroredName == name }
        }

        func link(_ cluster: String) -> KubernetesSourceStatus.Link? {
            source.status.links.first { $0.cluster == cluster }
        }

        func stop() async {
            let task = task.withLockedValue { $0 }
            task?.cancel()
            await task?.value
            try? await client.shutdown()
        }
    }

    func start(identity: String = "feed-a", configure: (inout KubernetesSourceOptions) -> Void = { _ in }) throws -> Running {
        try Running(self, identity: identity, configure: configure)
    }
}
