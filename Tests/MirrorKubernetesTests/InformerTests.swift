import Foundation
import NIOConcurrencyHelpers
import Testing
@testable import MirrorKubernetes

/// The informer against kmock: list-then-watch, resume after a cut, re-list after 410 with
/// only the differences, and an unreachable server that leaves the cache alone.
struct InformerTests {
    /// An informer on `server`'s exported Services, running until `stop()`, recording every
    /// change it hands its consumer as "added default/a", "updated …", "deleted …", "synced".
    final class Running: Sendable {
        let informer: Informer<KubeService>
        let client: KubeClient
        private let recorded = NIOLockedValueBox<[String]>([])
        private let task: NIOLockedValueBox<Task<Void, Never>?> = NIOLockedValueBox(nil)

        init(_ server: KMockServer) throws {
            var options = KubeClientOptions()
            options.allowPlainHTTP = true
            options.connectTimeout = .seconds(1)
            options.requestTimeout = .seconds(5)
            client = try KubeClient(connection: KubeConnection(server: server.url, origin: "test"), options: options,
                                    logger: Fixtures.logger)
            var informerOptions = InformerOptions(labelSelector: "mirror.linkerd.io/exported=true")
            informerOptions.backoff = RetryBackoff(initial: .milliseconds(50), maximum: .milliseconds(300))
            informerOptions.watchTimeout = 60...60
            informerOptions.pageSize = 2
            informer = Informer(client: client, options: informerOptions, logger: Fixtures.logger)
            let informer = informer, recorded = recorded
            task.withLockedValue {
                $0 = Task { await informer.run { event in recorded.withLockedValue { $0.append(Running.describe(event)) } } }
            }
        }

        var events: [String] { recorded.withLockedValue { $0 } }
        /// The events after the first "synced".
        var changes: [String] { Array(events.drop { $0 != "synced" }.dropFirst()) }
        var keys: [String] { informer.objects.map(\.key) }

        func stop() async {
            let task = task.withLockedValue { $0 }
            task?.cancel()
            await task?.value
            try? await client.shutdown()
        }

        static func describe(_ event: InformerEvent<KubeService>) -> String {
            switch event {
            case .added(let service): "added \(service.key)"
            case .updated(let old, let new): old.key == new.key ? "updated \(new.key)" : "updated \(old.key) to \(new.key)?"
            case .deleted(let service): "deleted \(service.key)"
            case .synced: "synced"
            }
        }
    }

    func withInformer(_ server: KMockServer, _ body: (Running) async throws -> Void) async throws {
        let running = try Running(server)
        do {
            try await body(running)
            await running.stop()
        } catch {
            await running.stop()
            throw error
        }
    }

    static let exported = Fixtures.exported
    static let notExported = ["mirror.linkerd.io/exported": "false"]

    @Test func listsThenFollowsChangesIncludingSelectorTransitions() async throws {
        try await withKMock { server in
            for name in ["a", "b", "c"] { try await server.create(Fixtures.services, Fixtures.service(name, labels: Self.exported)) }
            try await server.create(Fixtures.services, Fixtures.service("x", labels: Self.notExported))
            try await withInformer(server) { running in
                #expect(await eventually { running.events == ["added default/a", "added default/b", "added default/c", "synced"] },
                        "\(running.events)")
                #expect(try await eventually { try await server.openWatches() == 1 })

                try await server.create(Fixtures.services, Fixtures.service("d", labels: Self.exported))
                try await server.patch(Fixtures.services + "/a", ["metadata": ["labels": Self.notExported]])
                try await server.patch(Fixtures.services + "/b", ["spec": ["ports": [["port": 81]]]])
                try await server.patch(Fixtures.services + "/x", ["metadata": ["labels": Self.exported]])
                try await server.delete(Fixtures.services + "/c")
                let expected = ["added default/d", "deleted default/a", "updated default/b", "added default/x", "deleted default/c"]
                #expect(await eventually { running.changes == expected }, "\(running.events)")
                #expect(running.keys == ["default/b", "default/d", "default/x"])
                #expect(running.informer.object(forKey: "default/b")?.spec.ports?.first?.port == 81)

                let health = running.informer.health
                #expect(health.hasSynced && health.isWatching && health.lastEventTime != nil && health.lastError == nil)
                let version = try await server.resourceVersion()
                #expect(health.lists == 1 && health.objects == 3 && health.resourceVersion == version)
                // Listed in pages of two: three objects took two requests.
                let pages = try await server.requests().filter { $0.method == "GET" && $0.params["watch"] == nil && $0.path.hasSuffix("/services") }
                #expect(pages.count == 2)
            }
        }
    }

    /// A watch cut mid-event, then refused while changes happen: the informer resumes from
    /// the last version it saw (no new list) and sees each change exactly once.
    @Test func aBrokenWatchResumesWithoutLosingOrRepeatingChanges() async throws {
        try await withKMock { server in
            for name in ["a", "b", "c"] { try await server.create(Fixtures.services, Fixtures.service(name, labels: Self.exported)) }
            try await withInformer(server) { running in
                #expect(await eventually { running.events.last == "synced" })
                #expect(try await eventually { try await server.openWatches() == 1 })
                // A change seen on the watch moves the version to resume from past the list's.
                try await server.patch(Fixtures.services + "/a", ["spec": ["ports": [["port": 82]]]])
                #expect(await eventually { running.changes == ["updated default/a"] })
                let before = try await server.resourceVersion()

                try await server.refuseWatches()
                let broken = try await server.breakWatches(partial: true)
                #expect(broken == 1)
                #expect(await eventually { running.informer.health.consecutiveFailures >= 2 })
                #expect(running.informer.health.lastError?.contains("503") == true, "\(String(describing: running.informer.health.lastError))")
                try await server.create(Fixtures.services, Fixtures.service("d", labels: Self.exported))
                try await server.patch(Fixtures.services + "/b", ["spec": ["ports": [["port": 81]]]])
                try await server.delete(Fixtures.services + "/c")
                try await server.acceptWatches()

                let expected = ["updated default/a", "added default/d", "updated default/b", "deleted default/c"]
                #expect(await eventually { running.changes == expected }, "\(running.events)")
                try await Task.sleep(for: .milliseconds(300))
                #expect(running.changes == expected, "nothing repeated afterwards")
                #expect(running.keys == ["default/a", "default/b", "default/d"])

                let requests = try await server.requests()
                let lists = requests.filter { $0.method == "GET" && $0.params["watch"] == nil && $0.params["continue"] == nil }
                let watches = requests.filter { $0.params["watch"] == "true" }
                #expect(lists.count == 1 && running.informer.health.lists == 1)
                #expect(watches.count >= 3)
                #expect(watches.allSatisfy { $0.params["allowWatchBookmarks"] == "true" })
                #expect(watches.dropFirst().allSatisfy { $0.params["resourceVersion"] == before }, "\(watches.map(\.params))")
                #expect(running.informer.health.consecutiveFailures == 0 && running.informer.health.isWatching)
            }
        }
    }

    /// Bookmarks carry the version past changes the selector filters out, so a resumed watch
    /// starts there rather than replaying them (or falling out of the history: 410).
    @Test func bookmarksMoveTheVersionToResumeFrom() async throws {
        try await withKMock(arguments: ["--bookmark-interval", "0.1"]) { server in
            try await server.create(Fixtures.services, Fixtures.service("a", labels: Self.exported))
            try await withInformer(server) { running in
                #expect(await eventually { running.events.last == "synced" })
                #expect(try await eventually { try await server.openWatches() == 1 })
                for name in ["x", "y"] { try await server.create(Fixtures.services, Fixtures.service(name, labels: Self.notExported)) }
                let version = try await server.resourceVersion()
                #expect(await eventually { running.informer.health.resourceVersion == version }, "\(running.informer.health)")

                try await server.breakWatches()
                #expect(try await eventually { try await server.requests().filter { $0.params["watch"] == "true" }.count == 2 })
                let resumed = try await server.requests().last { $0.params["watch"] == "true" }
                #expect(resumed?.params["resourceVersion"] == version)
                #expect(running.events == ["added default/a", "synced"] && running.informer.health.lists == 1)
            }
        }
    }

    /// The server forgot the informer's version (410, as an ERROR event or as an HTTP status):
    /// it lists again and hands on only what changed meanwhile, deletions included.
    @Test(arguments: [false, true])
    func anExpiredVersionReListsAndEmitsOnlyTheDifferences(asHTTPStatus: Bool) async throws {
        try await withKMock(arguments: asHTTPStatus ? ["--expired-as-status"] : []) { server in
            for name in ["a", "b", "c"] { try await server.create(Fixtures.services, Fixtures.service(name, labels: Self.exported)) }
            try await withInformer(server) { running in
                #expect(await eventually { running.events.last == "synced" })
                #expect(try await eventually { try await server.openWatches() == 1 })

                try await server.refuseWatches()
                try await server.breakWatches()
                try await server.create(Fixtures.services, Fixtures.service("d", labels: Self.exported))
                try await server.patch(Fixtures.services + "/b", ["spec": ["ports": [["port": 81]]]])
                try await server.delete(Fixtures.services + "/c")
                try await server.compact()
                try await server.acceptWatches()

                let expected = ["updated default/b", "added default/d", "deleted default/c", "synced"]
                #expect(await eventually { running.changes == expected }, "\(running.events)")
                try await Task.sleep(for: .milliseconds(300))
                #expect(running.changes == expected)
                #expect(running.keys == ["default/a", "default/b", "default/d"])
                #expect(running.informer.health.lists == 2)
                let lists = try await server.requests().filter { $0.method == "GET" && $0.params["watch"] == nil && $0.params["continue"] == nil }
                #expect(lists.count == 2)
            }
        }
    }

    /// The API server goes away: the cache keeps its objects, health says why, retries back
    /// off (bounded); when a server answers again, only the differences come through.
    @Test func anUnreachableServerKeepsTheCacheAndHealthShowsTheError() async throws {
        let first = try await KMockServer.start()
        var second: KMockServer?
        do {
            for name in ["a", "b"] { try await first.create(Fixtures.services, Fixtures.service(name, labels: Self.exported)) }
            try await withInformer(first) { running in
                #expect(await eventually { running.events.last == "synced" })
                #expect(try await eventually { try await first.openWatches() == 1 })

                await first.kill()
                #expect(await eventually(timeout: .seconds(15)) { running.informer.health.consecutiveFailures >= 3 },
                        "\(running.informer.health)")
                let health = running.informer.health
                #expect(health.hasSynced && !health.isWatching)
                #expect(health.lastError?.contains("127.0.0.1:\(first.port)") == true, "\(String(describing: health.lastError))")
                #expect(health.lastErrorTime != nil && health.objects == 2)
                #expect(running.keys == ["default/a", "default/b"])
                #expect(running.events == ["added default/a", "added default/b", "synced"])

                // Back, as a new server with other versions: the old version is unknown there (410).
                let server = try await KMockServer.start(port: first.port, arguments: ["--start-rv", "1000"])
                second = server
                try await server.create(Fixtures.services, Fixtures.service("a", labels: Self.exported))
                try await server.create(Fixtures.services, Fixtures.service("e", labels: Self.exported))
                let expected = ["updated default/a", "added default/e", "deleted default/b", "synced"]
                #expect(await eventually(timeout: .seconds(15)) { running.changes == expected }, "\(running.events)")
                #expect(running.keys == ["default/a", "default/e"])
                #expect(await eventually { running.informer.health.consecutiveFailures == 0 && running.informer.health.isWatching })
            }
        } catch {
            await first.stop()
            await second?.stop()
            throw error
        }
        await first.stop()
        await second?.stop()
    }
}
