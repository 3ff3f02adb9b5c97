import Foundation
import Logging
import NIOCore
import NIOPosix
import MirrorModel
import MirrorFeed

/// `FeedBench clients`: one process of watchers, started several times by the driver so that
/// client CPU is spread over processes (and the kernel's scheduler) as over a fleet's nodes.
///
/// Opens `--watchers` real ``FeedClient``s (decode, validate, apply to a ``MirrorStore``), or
/// with `--wire` stream readers that only note revisions, reports through ``WatcherTally``,
/// and exits when the driver closes stdin (or after `--deadline` seconds: bounded).
func runClients(_ arguments: [String]) async throws {
    let endpoint = try FeedEndpoint(url: try argument("url", arguments))
    let watchers = try intArgument("watchers", arguments)
    let initial = UInt64(try intArgument("initial", arguments))
    let changes = try intArgument("changes", arguments)
    let deadline = (try? intArgument("deadline", arguments)) ?? 900
    let wireOnly = arguments.contains("--wire")
    let tls = try tlsArguments(arguments)
    var logger = Logger(label: "feed-bench") { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = .error
    let tally = WatcherTally(watchers: watchers, initial: initial, changes: changes)
    let group = MultiThreadedEventLoopGroup.singleton
    let wireTLS = try wireOnly ? tls?.makeClientContext() : nil

    // The driver closes our stdin when it is done with us: exit then (the kernel closes the
    // connections). A thread of its own, so no cooperative thread blocks in read(2).
    Thread.detachNewThread {
        while !FileHandle.standardInput.availableData.isEmpty {}
        exit(0)
    }
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        var channels: [any Channel] = []
        for index in 0..<watchers {
            if wireOnly {
                channels.append(try await WireWatcher.connect(endpoint: endpoint, tls: wireTLS, index: index, tally: tally, group: group))
            } else {
                var configuration = FeedClient.Configuration(endpoint: endpoint, tls: tls, stateDirectory: nil)
                configuration.silenceTimeout = .seconds(120)
                configuration.initialBackoff = .milliseconds(100)
                let client = FeedClient(configuration: configuration, group: group, logger: logger)
                tasks.addTask { try await client.run { tally.record(watcher: index, revision: $0.store.revision) } }
            }
            // Connect in waves, as a fleet would, rather than as one SYN flood.
            if index % 100 == 99 { try await Task.sleep(for: .milliseconds(20)) }
        }
        tasks.addTask {
            try await Task.sleep(for: .seconds(deadline))
            throw BenchError(description: "clients: deadline of \(deadline) s reached; \(tally.notReady) watchers never got the snapshot")
        }
        _ = try await tasks.next()
        tasks.cancelAll()
        for channel in channels { try? await channel.close() }
    }
}
