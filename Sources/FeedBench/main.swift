// FeedBench: the load generator behind bench/feed.sh.
//
//   FeedBench init --state PATH --services N
//       writes a state file: N gateway services and one remote-discovery service whose
//       endpoints the run flips, one endpoint per change.
//   FeedBench run --url URL --state PATH --services N --watchers W --changes C [--processes P]
//                 [--wire] [--tls-cert F --tls-key F --tls-ca F] [--server-pid PID]
//       the driver: starts P `clients` processes with W/P watchers each (real FeedClients:
//       decode, validate, apply to a MirrorStore; with --wire, stream readers only), waits
//       until all hold the snapshot, makes C one-endpoint edits of the state file, and prints
//       p50/p99 of the time from the file's rename to the last watcher having applied it.
//   FeedBench clients --url URL --watchers K --initial R --changes C [--wire] [TLS flags]
//       one process of watchers (started by `run`); reports on stdout.
//   FeedBench persist --services N [--malloc-stats]
//       save and load of the agent's persisted feed state; with --malloc-stats, glibc's heap
//       totals before the load and with the restored store held (stderr).
//   FeedBench micro [--services N]
//       the client's CPU per delta (decode, validate and apply one 16-endpoint service) in a
//       store of N services (default 1000).
//   FeedBench publisher --services N
//       the server's CPU per change after reading the source (order, check, encode deltas).
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import MirrorModel
import MirrorFeed

/// Client-side cost of one delta without network: decode (the fast path and, for
/// comparison, JSONDecoder) and validate + apply.
func runMicro(services: Int) throws {
    let state = benchState(services: services, step: 0)
    var lines: [ByteBuffer] = []
    for step in 1...2000 {
        let flat = benchState(services: 0, step: step).services[0]
        var line = try FeedEvent.delta(revision: UInt64(step + 1), .upsertService(flat)).encodedLine()
        line.moveWriterIndex(to: line.writerIndex - 1)
        lines.append(line)
    }
    func microseconds(since start: ContinuousClock.Instant) -> Double {
        seconds(ContinuousClock.now - start) * 1e6 / Double(lines.count)
    }
    // Best of 5 rounds: the machine is shared, and the first round pays for warming up.
    var decode = Double.infinity, apply = Double.infinity, foundation = Double.infinity
    for _ in 0..<5 {
        var fresh = FeedApplier()
        fresh.beginStream()
        _ = try fresh.apply(.snapshot(epoch: "e", revision: 1, state: state))
        var clock = ContinuousClock.now
        var events: [FeedEvent] = []
        for line in lines { events.append(try FeedEvent.decode(line: line)) }
        decode = min(decode, microseconds(since: clock))
        clock = ContinuousClock.now
        for event in events { _ = try fresh.apply(event) }
        apply = min(apply, microseconds(since: clock))
        clock = ContinuousClock.now
        var checksum = 0
        for line in lines { checksum &+= Int(try FeedEvent.decodeWithFoundation(line: line).revision) }
        foundation = min(foundation, microseconds(since: clock))
        precondition(checksum != 0)
    }
    print(String(format: "decode %.1f us (JSONDecoder: %.1f us) + validate/apply %.1f us", decode, foundation, apply))

    // The same deltas when the consumer keeps each applied store (as the agent's status board
    // does): the next apply must copy the whole store first (copy-on-write).
    var held = FeedApplier()
    held.beginStream()
    _ = try held.apply(.snapshot(epoch: "e", revision: 1, state: state))
    var kept = held.store
    let clock = ContinuousClock.now
    for line in lines.prefix(200) {
        _ = try held.apply(try FeedEvent.decode(line: line))
        kept = held.store
    }
    precondition(kept.revision > 1)
    print(String(format: "with the previous store kept by the consumer: %.1f us per delta (%d services)",
                 seconds(ContinuousClock.now - clock) * 1e6 / 200, state.services.count))
}

/// The feed server's cost per change beyond reading the source, by state size: ordering
/// and checking the deltas against the store as last published, encoding and queuing them
/// (no watchers). The source is scripted: stores prepared in advance, one endpoint flipped
/// per change, handed to the real ``FeedPublisher`` and ``FeedHub``.
func runPublisherMicro(services: Int) async throws {
    struct ScriptedSource: MirrorSource {
        let updates: [MirrorUpdate]
        let timings: NIOLockedValueBox<[Double]>
        var description: String { "scripted" }
        func run(onUpdate: @escaping @Sendable (MirrorUpdate) async -> Void) async throws {
            for update in updates {
                let clock = ContinuousClock.now
                await onUpdate(update)
                let elapsed = seconds(ContinuousClock.now - clock) * 1000
                timings.withLockedValue { $0.append(elapsed) }
            }
        }
    }
    var store = MirrorStore()
    var updates = [MirrorUpdate(store: store, changes: try store.applySnapshot(benchState(services: services, step: 0), revision: 1))]
    for step in 1...8 {
        let changes = try store.applySnapshot(benchState(services: services, step: step), revision: store.revision + 1)
        updates.append(MirrorUpdate(store: store, changes: changes))
    }
    let timings = NIOLockedValueBox<[Double]>([])
    let hub = FeedHub()
    var logger = Logger(label: "feed-bench")
    logger.logLevel = .error
    try await FeedPublisher(hub: hub, source: ScriptedSource(updates: updates, timings: timings), logger: logger).run()
    let perChange = timings.withLockedValue { $0 }.dropFirst().sorted()
    guard hub.revision == 9, let best = perChange.first else { throw BenchError(description: "expected 8 deltas, hub at revision \(hub.revision)") }
    print(String(format: "publisher: %.2f ms per one-endpoint change with %d services (best of %d; median %.2f ms)",
                 best, services + 1, perChange.count, percentile(perChange, 50)))
}

let arguments = Array(CommandLine.arguments.dropFirst())
do {
    switch arguments.first {
    case "init":
        let statePath = try argument("state", arguments)
        try writeAtomically(benchState(services: try intArgument("services", arguments), step: 0), to: statePath)
    case "micro":
        try runMicro(services: (try? intArgument("services", arguments)) ?? 1000)
    case "persist":
        // What an agent pays to persist its applied state (at most once per persist interval).
        var store = MirrorStore()
        let services = try intArgument("services", arguments)
        try store.applySnapshot(benchState(services: services, step: 0), revision: 1)
        let directory = NSTemporaryDirectory() + "feed-bench-persist-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = FeedStateFile(directory: directory)
        let clock = ContinuousClock.now
        try file.save(store, epoch: "e")
        let saved = seconds(ContinuousClock.now - clock) * 1000
        // The restored store's heap: what the agent holds after a restart (the source store
        // is dropped first, so nothing is shared with it).
        store = MirrorStore()
        if arguments.contains("--malloc-stats") { printMallocStats("before load") }
        let loadClock = ContinuousClock.now
        let loadCPU = processCPUSeconds()
        let restored = try file.load()?.store  // the change set (what to program) is dropped
        let loadedCPU = (processCPUSeconds() - loadCPU) * 1000
        let loaded = seconds(ContinuousClock.now - loadClock) * 1000
        if arguments.contains("--malloc-stats") { printMallocStats("after load (restored store held)") }
        precondition(restored?.services.count == services + 1)
        print(String(format: "persist: save %.1f ms, load %.1f ms (%.1f ms CPU) for %d services", saved, loaded, loadedCPU, services + 1))
    case "publisher":
        try await runPublisherMicro(services: try intArgument("services", arguments))
    case "run":
        try await runDriver(arguments)
    case "clients":
        try await runClients(arguments)
    default:
        throw BenchError(description: "usage: FeedBench init|run|clients|micro (see the top of Sources/FeedBench/main.swift)")
    }
} catch {
    FileHandle.standardError.write(Data("FeedBench: \(error)\n".utf8))
    exit(1)
}
