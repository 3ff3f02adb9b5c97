// feed-bench: the load generator behind bench/feed.sh.
//
//   FeedBench init --state PATH --services N
//       writes a state file: N gateway services and one remote-discovery service whose
//       endpoints the run flips, one endpoint per change.
//   FeedBench run --url http://127.0.0.1:PORT --state PATH --watchers W --changes C
//       opens W real FeedClients (the agent's client code: decode, validate, apply to a
//       MirrorStore) in this process, waits until all hold the snapshot, then makes C
//       one-endpoint edits of the state file and, for each, measures the time from the
//       file's rename to the moment the last of the W clients has applied the delta. With
//       --wire the watchers only read the stream (the server's fan-out alone).
//   FeedBench micro
//       the client's CPU per delta (decode, validate and apply one 16-endpoint service).
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Sync

struct BenchError: Error, CustomStringConvertible {
    var description: String
}

func argument(_ name: String, _ arguments: [String]) throws -> String {
    guard let index = arguments.firstIndex(of: "--\(name)"), index + 1 < arguments.count else {
        throw BenchError(description: "missing --\(name)")
    }
    return arguments[index + 1]
}

func intArgument(_ name: String, _ arguments: [String]) throws -> Int {
    guard let value = Int(try argument(name, arguments)) else { throw BenchError(description: "--\(name) must be an integer") }
    return value
}

/// The benchmark's state: `count` gateway services plus `flat-0` with 16 endpoints; change
/// `step` marks endpoint `step % 16` ready or not.
func benchState(services count: Int, step: Int) -> MirrorState {
    let cluster = Cluster(name: "paris", gateway: Gateway(addresses: ["10.99.1.2"]))
    var services = (0..<count).map { index in
        MirroredService(name: "svc-\(index)", namespace: "default", cluster: "paris", mode: .gateway,
                        ips: ["10.\(112 + index / 62500).\(index / 250 % 250).\(index % 250 + 1)"], ports: [ServicePort(name: "http", port: 80)])
    }
    let endpoints = (0..<16).map { index in
        Endpoint(ip: "10.20.0.\(index + 1)", ready: index != step % 16 || step == 0, hostname: "flat-\(index)")
    }
    services.append(MirroredService(name: "flat", namespace: "default", cluster: "paris", mode: .remoteDiscovery,
                                    ips: ["10.111.0.1"], ports: [ServicePort(name: "http", port: 80, targetPort: 8080)], endpoints: endpoints))
    return MirrorState(clusters: [cluster], services: services)
}

func writeAtomically(_ state: MirrorState, to path: String) throws {
    let temporary = path + ".tmp"
    try state.canonicalJSON().write(to: URL(fileURLWithPath: temporary))
    guard rename(temporary, path) == 0 else { throw BenchError(description: "rename \(temporary) failed: errno \(errno)") }
}

/// Which revision each watcher holds, and when the last of them reached the awaited one.
final class Progress: Sendable {
    struct State {
        var revisions: [UInt64]
        var target: UInt64 = .max
        var remaining = 0
        var doneAt: ContinuousClock.Instant?
        var firstAt: ContinuousClock.Instant?
    }
    let state: NIOLockedValueBox<State>

    init(watchers: Int) {
        state = NIOLockedValueBox(State(revisions: Array(repeating: 0, count: watchers)))
    }

    func record(watcher: Int, revision: UInt64) {
        let now = ContinuousClock.now
        state.withLockedValue { s in
            if s.revisions[watcher] < s.target, revision >= s.target {
                if s.firstAt == nil { s.firstAt = now }
                s.remaining -= 1
                if s.remaining == 0 { s.doneAt = now }
            }
            s.revisions[watcher] = revision
        }
    }

    func await(_ target: UInt64) {
        state.withLockedValue { s in
            s.target = target
            s.remaining = s.revisions.filter { $0 < target }.count
            s.doneAt = s.remaining == 0 ? ContinuousClock.now : nil
            s.firstAt = s.doneAt
        }
    }

    func wait(timeout: Duration) async -> ContinuousClock.Instant? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let done = state.withLockedValue({ $0.doneAt }) { return done }
            try? await Task.sleep(for: .microseconds(500))
        }
        return nil
    }

    var lagging: Int { state.withLockedValue { $0.remaining } }
    var firstAt: ContinuousClock.Instant? { state.withLockedValue { $0.firstAt } }
}

func metric(_ name: String, url: String) throws -> Double {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    process.arguments = ["-sS", "\(url)/metrics"]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
        return Double(line.split(separator: " ").last ?? "") ?? 0
    }
    throw BenchError(description: "metric \(name) not found at \(url)/metrics")
}

/// CPU seconds (user + system) a process has used, from /proc/PID/stat; nil when unknown.
func cpuSeconds(pid: Int?) -> Double? {
    guard let pid, let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    // After the command: state is field 3; utime and stime are fields 14 and 15.
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
    return sorted[max(0, min(sorted.count - 1, rank))]
}

func run(_ arguments: [String]) async throws {
    let url = try argument("url", arguments)
    let statePath = try argument("state", arguments)
    let watchers = try intArgument("watchers", arguments)
    let changes = try intArgument("changes", arguments)
    let services = try intArgument("services", arguments)
    let wireOnly = arguments.contains("--wire")
    let serverPID = (try? argument("server-pid", arguments)).flatMap { Int($0) }
    var logger = Logger(label: "feed-bench") { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = .error
    let endpoint = try FeedEndpoint(url: url)
    let progress = Progress(watchers: watchers)
    let group = MultiThreadedEventLoopGroup.singleton

    let started = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self, returning: Void.self) { tasks in
        var channels: [any Channel] = []
        for index in 0..<watchers {
            if wireOnly {
                channels.append(try await WireWatcher.connect(endpoint: endpoint, index: index, progress: progress, group: group))
                continue
            }
            var configuration = FeedClient.Configuration(endpoint: endpoint, tls: nil, stateDirectory: nil)
            configuration.silenceTimeout = .seconds(120)
            configuration.initialBackoff = .milliseconds(100)
            let client = FeedClient(configuration: configuration, group: group, logger: logger)
            tasks.addTask { try await client.run { progress.record(watcher: index, revision: $0.store.revision) } }
            if index % 100 == 99 { try await Task.sleep(for: .milliseconds(20)) }
        }
        let initial = UInt64(try metric("mirror_feed_revision", url: url))
        progress.await(initial)
        guard await progress.wait(timeout: .seconds(120)) != nil else {
            throw BenchError(description: "\(progress.lagging) of \(watchers) watchers never got the snapshot")
        }
        let connected = ContinuousClock.now - started
        let connectSeconds = Double(connected.components.seconds) + Double(connected.components.attoseconds) / 1e18
        print(String(format: "connected:   %d watchers holding revision %llu after %.1f s", watchers, initial, connectSeconds))

        let bytesBefore = try metric("mirror_feed_bytes_sent_total", url: url)
        let serverCPUBefore = cpuSeconds(pid: serverPID)
        var latencies: [Double] = []
        var firsts: [Double] = []
        func milliseconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        }
        var deltaLine = 0
        for step in 1...changes {
            let state = benchState(services: services, step: step)
            if step == 1, let flat = state.services.last {
                deltaLine = try FeedEvent.delta(revision: initial + 1, .upsertService(flat)).encodedLine().readableBytes
            }
            progress.await(initial + UInt64(step))
            let written = ContinuousClock.now
            try writeAtomically(state, to: statePath)
            guard let done = await progress.wait(timeout: .seconds(10)) else {
                throw BenchError(description: "change \(step): \(progress.lagging) watchers never applied it")
            }
            latencies.append(milliseconds(done - written))
            firsts.append(milliseconds((progress.firstAt ?? done) - written))
            try await Task.sleep(for: .milliseconds(30))
        }
        let bytesAfter = try metric("mirror_feed_bytes_sent_total", url: url)
        if let before = serverCPUBefore, let after = cpuSeconds(pid: serverPID) {
            let perChange = (after - before) * 1000 / Double(changes)
            print(String(format: "server CPU:  %.1f ms per change for %d watchers (%.1f us per watcher; includes re-reading the state file)",
                         perChange, watchers, perChange * 1000 / Double(watchers)))
        }
        let sorted = latencies.sorted()
        print(String(format: "propagation: p50 %.1f ms  p99 %.1f ms  max %.1f ms", percentile(sorted, 50), percentile(sorted, 99), sorted.last ?? .nan)
              + "  (file rename -> last of \(watchers) watchers \(wireOnly ? "received it" : "decoded+validated+applied it"), \(changes) changes)")
        let sortedFirsts = firsts.sorted()
        print(String(format: "first:       p50 %.1f ms  p99 %.1f ms  (file rename -> first watcher applied: poll, parse, diff, publish)",
                     percentile(sortedFirsts, 50), percentile(sortedFirsts, 99)))
        print(String(format: "bytes:       %.0f bytes per delta per watcher (event line %d bytes; state %d services, snapshot line %d bytes)",
                     (bytesAfter - bytesBefore) / Double(changes * watchers), deltaLine, services + 1,
                     try FeedEvent.snapshot(epoch: "x", revision: 1, state: benchState(services: services, step: 0)).encodedLine().readableBytes))
        tasks.cancelAll()
        for channel in channels { try? await channel.close() }
    }
}

let arguments = Array(CommandLine.arguments.dropFirst())
do {
    switch arguments.first {
    case "init":
        let statePath = try argument("state", arguments)
        try writeAtomically(benchState(services: try intArgument("services", arguments), step: 0), to: statePath)
    case "micro":
        // Client-side cost of one delta: decode + apply (no network).
        let state = benchState(services: 1000, step: 0)
        var applier = FeedApplier()
        applier.beginStream()
        _ = try applier.apply(.snapshot(epoch: "e", revision: 1, state: state))
        var lines: [ByteBuffer] = []
        for step in 1...2000 {
            let flat = benchState(services: 0, step: step).services[0]
            var line = try FeedEvent.delta(revision: UInt64(step + 1), .upsertService(flat)).encodedLine()
            line.moveWriterIndex(to: line.writerIndex - 1)
            lines.append(line)
        }
        var clock = ContinuousClock.now
        var events: [FeedEvent] = []
        for line in lines { events.append(try FeedEvent.decode(line: line)) }
        func microseconds(_ duration: Duration) -> Double {
            (Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12) / Double(lines.count)
        }
        let decode = microseconds(ContinuousClock.now - clock)
        clock = ContinuousClock.now
        for event in events { _ = try applier.apply(event) }
        print(String(format: "decode %.1f us + validate/apply %.1f us", decode, microseconds(ContinuousClock.now - clock)))
    case "run":
        try await run(arguments)
    default:
        throw BenchError(description: "usage: FeedBench init --state PATH --services N | run --url URL --state PATH --services N --watchers W --changes C")
    }
} catch {
    FileHandle.standardError.write(Data("FeedBench: \(error)\n".utf8))
    exit(1)
}
