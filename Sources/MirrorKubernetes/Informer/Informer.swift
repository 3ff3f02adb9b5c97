import Foundation
import Logging
import NIOConcurrencyHelpers

public struct InformerOptions: Sendable {
    /// One namespace, or every namespace when nil.
    public var namespace: String?
    public var labelSelector: String?
    public var pageSize: Int? = 500
    /// Each watch asks the server to end it after a random time in this range (seconds),
    /// so watches of many informers do not all reconnect at once.
    public var watchTimeout: ClosedRange<Int> = 300...600
    /// How long the client waits past `watchTimeout` on a silent watch before calling it dead.
    public var watchGrace: Duration = .seconds(30)
    public var backoff = RetryBackoff()

    public init(namespace: String? = nil, labelSelector: String? = nil) {
        self.namespace = namespace
        self.labelSelector = labelSelector
    }
}

/// List-then-watch of one resource and selector, with a cache of the objects by
/// `namespace/name` and a consumer that sees every change once, in order.
///
/// After a watch breaks it resumes from the last resourceVersion it saw (events or
/// bookmarks), so nothing is lost or repeated; on 410 Gone it lists again and passes on
/// only the differences, deletions included. Errors are retried with ``RetryBackoff``.
/// The cache is only ever replaced by a complete list: an unreachable server leaves the
/// last state in place (and in ``health``) for as long as it stays away.
public final class Informer<Object: KubeObject>: Sendable {
    private struct State {
        var cache = InformerCache<Object>()
        var health: InformerHealth
    }

    public let client: KubeClient
    public let options: InformerOptions
    private let logger: Logger
    private let state: NIOLockedValueBox<State>

    public init(client: KubeClient, options: InformerOptions = InformerOptions(),
                logger: Logger = Logger(label: "mirror-kubernetes")) {
        self.client = client
        self.options = options
        var logger = logger
        logger[metadataKey: "resource"] = "\(Object.resource)"
        if let selector = options.labelSelector { logger[metadataKey: "selector"] = "\(selector)" }
        self.logger = logger
        let health = InformerHealth(resource: "\(Object.resource)", namespace: options.namespace,
                                    labelSelector: options.labelSelector)
        state = NIOLockedValueBox(State(health: health))
    }

    public var health: InformerHealth { state.withLockedValue { $0.health } }

    /// The cached objects, in key order.
    public var objects: [Object] {
        state.withLockedValue { state in state.cache.objects.keys.sorted().compactMap { state.cache.objects[$0] } }
    }

    public func object(forKey key: String) -> Object? { state.withLockedValue { $0.cache.objects[key] } }

    /// Lists, watches and retries until the calling task is cancelled, handing each change to
    /// `consumer` (awaited: the next change waits for it).
    public func run(_ consumer: (InformerEvent<Object>) async -> Void) async {
        var resourceVersion: String?
        var failures = 0
        while !Task.isCancelled {
            let listing = resourceVersion == nil
            if listing {
                do {
                    let list = try await client.listAll(Object.self, namespace: options.namespace,
                                                        labelSelector: options.labelSelector, pageSize: options.pageSize)
                    let changes = state.withLockedValue { state in
                        let changes = state.cache.replace(with: list.items)
                        state.health.hasSynced = true
                        state.health.lists += 1
                        state.health.lastSyncTime = Date()
                        state.health.objects = state.cache.objects.count
                        state.health.resourceVersion = list.metadata.resourceVersion
                        state.health.consecutiveFailures = 0
                        return changes
                    }
                    for change in changes { await consumer(change) }
                    await consumer(.synced)
                    resourceVersion = list.metadata.resourceVersion ?? ""
                    failures = 0
                } catch {
                    guard !Task.isCancelled else { return }
                    failures += 1
                    record(error, failures: failures, while: "list")
                    guard await pause(failures) else { return }
                    continue
                }
            }
            let started = ContinuousClock.now
            var heard = 0
            do {
                var watch = WatchOptions(labelSelector: options.labelSelector, resourceVersion: resourceVersion,
                                         timeoutSeconds: Int.random(in: options.watchTimeout))
                watch.grace = options.watchGrace
                state.withLockedValue {
                    $0.health.isWatching = true
                    $0.health.watches += 1
                }
                defer { state.withLockedValue { $0.health.isWatching = false } }
                for try await event in client.watch(Object.self, namespace: options.namespace, options: watch) {
                    if case .error(let status) = event { throw KubeError.from(status: status) }
                    heard += 1
                    let change = state.withLockedValue { state in
                        let change = state.cache.apply(event)
                        if let version = event.resourceVersion, !version.isEmpty { state.health.resourceVersion = version }
                        state.health.lastEventTime = Date()
                        state.health.objects = state.cache.objects.count
                        state.health.consecutiveFailures = 0
                        return change
                    }
                    if let version = event.resourceVersion, !version.isEmpty { resourceVersion = version }
                    failures = 0
                    if let change { await consumer(change) }
                }
                // The server ended the watch (its timeout): watch again from where it left off,
                // unless it keeps closing at once, which is a failure like any other.
                if heard == 0, ContinuousClock.now - started < .seconds(1), !Task.isCancelled {
                    failures += 1
                    record(KubeError.transport("the watch ended at once"), failures: failures, while: "watch")
                    guard await pause(failures) else { return }
                }
            } catch KubeError.expired(let status) {
                logger.info("resourceVersion \(resourceVersion ?? "") expired (\(status)); listing again")
                resourceVersion = nil
                // Expired straight after a list (nothing heard in between) would loop: back off.
                if listing, heard == 0 {
                    failures += 1
                    record(KubeError.expired(status), failures: failures, while: "watch")
                    guard await pause(failures) else { return }
                } else {
                    record(KubeError.expired(status), failures: failures, while: "watch")
                }
            } catch {
                guard !Task.isCancelled else { return }
                failures += 1
                record(error, failures: failures, while: "watch")
                guard await pause(failures) else { return }
            }
        }
    }

    private func record(_ error: any Error, failures: Int, while step: String) {
        let text = "\(step): \(error)"
        state.withLockedValue {
            $0.health.lastError = text
            $0.health.lastErrorTime = Date()
            $0.health.consecutiveFailures = failures
        }
        if failures > 0 { logger.warning("\(text) (failure \(failures))") }
    }

    /// Sleeps for the backoff; false when the task was cancelled meanwhile.
    private func pause(_ failures: Int) async -> Bool {
        do {
            try await Task.sleep(for: options.backoff.delay(afterFailures: failures))
            return true
        } catch {
            return false
        }
    }
}
