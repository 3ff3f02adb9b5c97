import Foundation
import NIOConcurrencyHelpers
import NIOSSL
import Testing
@testable import MirrorKubernetes

/// The client against kmock: lists with selectors and pages, writes with optimistic
/// concurrency, watches (order, bookmarks, 410, cut streams), TLS and tokens.
struct KubeClientTests {
    @Test func listsWithALabelSelectorAndInPages() async throws {
        try await withKMock { server in
            for name in ["a", "b", "c"] { try await server.create(Fixtures.services, Fixtures.service(name, labels: Fixtures.exported)) }
            for name in ["d", "e"] { try await server.create(Fixtures.services, Fixtures.service(name, labels: ["app": name])) }
            try await server.create("/api/v1/namespaces/other/services", Fixtures.service("f", labels: Fixtures.exported, namespace: "other"))
            try await using(try Fixtures.client(server)) { client in
                let selector = try LabelSelector(matchLabels: Fixtures.exported).queryText()

                let all = try await client.list(KubeService.self)
                #expect(all.items.map(\.key) == ["default/a", "default/b", "default/c", "default/d", "default/e", "other/f"])
                #expect(all.metadata.resourceVersion == (try await server.resourceVersion()))

                let exported = try await client.list(KubeService.self, namespace: "default", options: ListOptions(labelSelector: selector))
                #expect(exported.items.map(\.metadata.name) == ["a", "b", "c"])
                #expect(exported.items.first?.spec.ports?.first == KubeServicePort(name: "http", protocol: "TCP", port: 80, targetPort: .int(8080)))

                let notIn = try await client.list(KubeService.self, options: ListOptions(labelSelector: "app notin (d),!mirror.linkerd.io/exported"))
                #expect(notIn.items.map(\.metadata.name) == ["e"])

                let page = try await client.list(KubeService.self, options: ListOptions(labelSelector: selector, limit: 2))
                #expect(page.items.map(\.metadata.name) == ["a", "b"])
                #expect(page.metadata.continue != nil && page.metadata.remainingItemCount == 2)

                let everything = try await client.listAll(KubeService.self, labelSelector: selector, pageSize: 2)
                #expect(everything.items.map(\.key) == ["default/a", "default/b", "default/c", "other/f"])
                #expect(everything.metadata.resourceVersion == all.metadata.resourceVersion)
                let pages = try await server.requests().filter { $0.params["limit"] == "2" }
                #expect(pages.count == 3)
                #expect(pages.last?.params["continue"] != nil && pages.last?.params["labelSelector"] == selector)
            }
        }
    }

    /// An object the types cannot read is named with its place in the response.
    @Test func anUndecodableObjectIsNamedInTheError() async throws {
        try await withKMock { server in
            try await server.create(Fixtures.services, Fixtures.service("a"))
            try await server.create(Fixtures.services, ["metadata": ["name": "b"], "spec": ["ports": [["port": "eighty"]]]])
            try await using(try Fixtures.client(server)) { client in
                let error = await #expect(throws: KubeError.self) { _ = try await client.list(KubeService.self) }
                guard case .decoding(let reason)? = error else { Issue.record("got \(String(describing: error))"); return }
                #expect(reason.hasPrefix("GET http://127.0.0.1:\(server.port)/api/v1/services: items[1].spec.ports[0].port: wrong type"),
                        "\(reason)")
            }
        }
    }

    @Test func writesUseOptimisticConcurrency() async throws {
        try await withKMock { server in
            try await using(try Fixtures.client(server)) { client in
                var service = KubeService(metadata: ObjectMeta(name: "bar-paris", namespace: "default", labels: ["mirror.linkerd.io/mirrored-service": "true"]),
                                          spec: KubeServiceSpec(ports: [KubeServicePort(name: "http", port: 80)]))
                let created = try await client.create(service)
                #expect(created.metadata.resourceVersion != nil && created.metadata.uid != nil)
                let duplicate = await #expect(throws: KubeError.self) { try await client.create(service) }
                guard case .alreadyExists? = duplicate else { Issue.record("expected alreadyExists, got \(String(describing: duplicate))"); return }

                service = created
                service.spec.ports = [KubeServicePort(name: "http", port: 8080)]
                let updated = try await client.update(service)
                #expect(updated.metadata.resourceVersion != created.metadata.resourceVersion)
                #expect(try await client.get(KubeService.self, namespace: "default", name: "bar-paris").spec.ports?.first?.port == 8080)

                // `service` still carries the version before the update: refused, typed.
                let stale = await #expect(throws: KubeError.self) { try await client.update(service) }
                guard case .conflict(let status)? = stale else { Issue.record("expected conflict, got \(String(describing: stale))"); return }
                #expect(status.code == 409)

                let staleDelete = await #expect(throws: KubeError.self) {
                    try await client.delete(KubeService.self, namespace: "default", name: "bar-paris", resourceVersion: created.metadata.resourceVersion)
                }
                guard case .conflict? = staleDelete else { Issue.record("expected conflict, got \(String(describing: staleDelete))"); return }
                try await client.delete(KubeService.self, namespace: "default", name: "bar-paris", resourceVersion: updated.metadata.resourceVersion)
                let gone = await #expect(throws: KubeError.self) { try await client.get(KubeService.self, namespace: "default", name: "bar-paris") }
                guard case .notFound? = gone else { Issue.record("expected notFound, got \(String(describing: gone))"); return }
            }
        }
    }

    @Test func aWatchDeliversEventsInOrderWithBookmarks() async throws {
        try await withKMock(arguments: ["--bookmark-interval", "0.2"]) { server in
            try await server.create(Fixtures.services, Fixtures.service("a", labels: Fixtures.exported))
            try await using(try Fixtures.client(server)) { client in
                let list = try await client.list(KubeService.self, namespace: "default")
                let events = NIOLockedValueBox<[String]>([])
                let watcher = Task {
                    let options = WatchOptions(labelSelector: "mirror.linkerd.io/exported=true", resourceVersion: list.metadata.resourceVersion)
                    for try await event in client.watch(KubeService.self, namespace: "default", options: options) {
                        events.withLockedValue { $0.append(Self.describe(event)) }
                    }
                }
                #expect(try await eventually { try await server.openWatches() == 1 })
                try await server.patch(Fixtures.services + "/a", ["spec": ["ports": [["port": 81]]]])
                try await server.create(Fixtures.services, Fixtures.service("b", labels: Fixtures.exported))
                try await server.create(Fixtures.services, Fixtures.service("ignored", labels: ["app": "x"]))
                try await server.delete(Fixtures.services + "/a")
                let last = try await server.resourceVersion()
                let changes = ["MODIFIED a", "ADDED b", "DELETED a"]
                #expect(await eventually { events.withLockedValue { $0.filter { !$0.hasPrefix("BOOKMARK") } } == changes })
                // A bookmark after the last change carries its version (nothing missed up to it).
                #expect(await eventually { events.withLockedValue { $0.last } == "BOOKMARK \(last)" })
                watcher.cancel()
                _ = await watcher.result
            }
        }
    }

    /// A version older than the server's history is 410, whichever way the server says it.
    @Test(arguments: [false, true])
    func anExpiredVersionIsATypedError(asHTTPStatus: Bool) async throws {
        try await withKMock(arguments: asHTTPStatus ? ["--expired-as-status"] : []) { server in
            try await server.create(Fixtures.services, Fixtures.service("a"))
            try await using(try Fixtures.client(server)) { client in
                let old = try await client.list(KubeService.self).metadata.resourceVersion
                try await server.create(Fixtures.services, Fixtures.service("b"))
                try await server.compact()
                let error = await #expect(throws: KubeError.self) {
                    for try await _ in client.watch(KubeService.self, options: WatchOptions(resourceVersion: old)) {}
                }
                guard case .expired(let status)? = error else { Issue.record("expected expired, got \(String(describing: error))"); return }
                #expect(status.code == 410)

                // A continue token from before the compaction has expired too.
                let page = try await client.list(KubeService.self, options: ListOptions(limit: 1))
                try await server.compact()
                try await server.create(Fixtures.services, Fixtures.service("c"))
                try await server.compact()
                let pageError = await #expect(throws: KubeError.self) {
                    _ = try await client.list(KubeService.self, options: ListOptions(limit: 1, continueToken: page.metadata.continue))
                }
                guard case .expired? = pageError else { Issue.record("expected expired, got \(String(describing: pageError))"); return }
            }
        }
    }

    /// A stream that stops in the middle of an event, cut or ended as if complete, is a
    /// transport error; the half event is never decoded or delivered.
    @Test(arguments: [false, true])
    func aWatchEndingMidEventFailsWithoutAHalfEvent(endedCleanly: Bool) async throws {
        try await withKMock { server in
            try await server.create(Fixtures.services, Fixtures.service("a"))
            try await using(try Fixtures.client(server)) { client in
                let events = NIOLockedValueBox<[String]>([])
                let watcher = Task {
                    for try await event in client.watch(KubeService.self, options: WatchOptions()) {
                        events.withLockedValue { $0.append(Self.describe(event)) }
                    }
                }
                #expect(await eventually { events.withLockedValue { $0 } == ["ADDED a"] })
                let broken = try await server.breakWatches(partial: true, clean: endedCleanly)
                #expect(broken == 1)
                let result = await watcher.result
                guard case .failure(let error) = result, case KubeError.transport(let reason) = error else {
                    Issue.record("expected a transport error, got \(result)")
                    return
                }
                #expect(reason.hasPrefix("watch http://127.0.0.1:\(server.port)/api/v1/services?watch=true"))
                #expect(reason.contains(endedCleanly ? "ended in the middle of an event" : "was cut"), "\(reason)")
                #expect(events.withLockedValue { $0 } == ["ADDED a"])
            }
        }
    }

    /// TLS with the cluster's CA from a kubeconfig, a client certificate and a bearer token;
    /// each wrong piece fails in its own way.
    @Test func tlsWithTheClusterCAClientCertificateAndToken() async throws {
        let pki = try TestPKI.shared()
        try await withKMock(arguments: ["--token", "s3cret"], pki: pki) { server in
            func kubeconfig(ca: String, token: String, clientCertificate: Bool = true) throws -> KubeConnection {
                var user = "token: \(token)"
                if clientCertificate {
                    user += ", client-certificate-data: \(try pki.base64(pki.clientCert)), client-key-data: \(try pki.base64(pki.clientKey))"
                }
                return try KubeConfig.parse("""
                    current-context: t
                    clusters: [{name: k, cluster: {server: 'https://127.0.0.1:\(server.port)', certificate-authority-data: \(try pki.base64(ca))}}]
                    users: [{name: u, user: {\(user)}}]
                    contexts: [{name: t, context: {cluster: k, user: u}}]
                    """, source: "kubeconfig test").connection()
            }
            func attempt(_ connection: KubeConnection) async throws -> [String] {
                try await using(try KubeClient(connection: connection, logger: Fixtures.logger)) { client in
                    return try await client.list(KubeService.self).items.map(\.metadata.name)
                }
            }
            try await server.create(Fixtures.services, Fixtures.service("a"))
            #expect(try await attempt(try kubeconfig(ca: pki.ca, token: "s3cret")) == ["a"])

            let wrongToken = await #expect(throws: KubeError.self) { try await attempt(try kubeconfig(ca: pki.ca, token: "nope")) }
            guard case .unauthorized(let status)? = wrongToken else { Issue.record("got \(String(describing: wrongToken))"); return }
            #expect(status.code == 401)

            let untrusted = await #expect(throws: KubeError.self) { try await attempt(try kubeconfig(ca: pki.otherCA, token: "s3cret")) }
            guard case .transport(let reason)? = untrusted else { Issue.record("got \(String(describing: untrusted))"); return }
            #expect(reason.contains("CERTIFICATE_VERIFY_FAILED"))

            let anonymous = await #expect(throws: KubeError.self) {
                try await attempt(try kubeconfig(ca: pki.ca, token: "s3cret", clientCertificate: false))
            }
            guard case .transport? = anonymous else { Issue.record("got \(String(describing: anonymous))"); return }
        }
    }

    /// In a pod: the token file is re-read after the kubelet rotates it.
    @Test func theInClusterTokenIsReReadAfterRotation() async throws {
        let pki = try TestPKI.shared()
        try await withKMock(arguments: ["--token", "first"], pki: pki) { server in
            let directory = try Fixtures.temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try "first".write(toFile: directory + "/token", atomically: true, encoding: .utf8)
            try FileManager.default.copyItem(atPath: pki.ca, toPath: directory + "/ca.crt")
            var connection = try KubeConnection.inCluster(
                environment: ["KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": String(server.port)], directory: directory)
            // The harness asks for a client certificate; a pod's API server would not.
            connection.clientCertificateChain = try NIOSSLCertificate.fromPEMFile(pki.clientCert)
            connection.clientKey = try NIOSSLPrivateKey(file: pki.clientKey, format: .pem)
            try await using(try KubeClient(connection: connection, logger: Fixtures.logger)) { client in
                #expect(try await client.list(KubeService.self).items.isEmpty)

                try await server.setToken("second")
                let refused = await #expect(throws: KubeError.self) { _ = try await client.list(KubeService.self) }
                guard case .unauthorized? = refused else { Issue.record("got \(String(describing: refused))"); return }

                try "second".write(toFile: directory + "/token.tmp", atomically: false, encoding: .utf8)
                #expect(rename(directory + "/token.tmp", directory + "/token") == 0)
                #expect(try await client.list(KubeService.self).items.isEmpty)
            }
        }
    }

    static func describe(_ event: KubeWatchEvent<KubeService>) -> String {
        switch event {
        case .added(let service): "ADDED \(service.metadata.name)"
        case .modified(let service): "MODIFIED \(service.metadata.name)"
        case .deleted(let service): "DELETED \(service.metadata.name)"
        case .bookmark(let version): "BOOKMARK \(version)"
        case .error(let status): "ERROR \(status)"
        }
    }
}

