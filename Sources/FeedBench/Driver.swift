import Foundation
import NIOConcurrencyHelpers
import MirrorModel
import MirrorFeed

/// `FeedBench run`: starts `--processes` clients processes sharing `--watchers` between
/// them, waits until every watcher holds the snapshot, then makes `--changes` one-endpoint
/// edits of the state file, one at a time, and for each takes the time from the file's rename
/// to the last watcher (over all processes) having applied it. Timestamps are CLOCK_MONOTONIC,
/// taken by the clients themselves, so the driver's own scheduling does not enter the figure.
func runDriver(_ arguments: [String]) async throws {
    let url = try argument("url", arguments)
    let statePath = try argument("state", arguments)
    let watchers = try intArgument("watchers", arguments)
    let changes = try intArgument("changes", arguments)
    let services = try intArgument("services", arguments)
    let processes = max(1, min(watchers, (try? intArgument("processes", arguments)) ?? 4))
    let wireOnly = arguments.contains("--wire")
    let tls = try tlsArguments(arguments)
    let serverPID = (try? argument("server-pid", arguments)).flatMap { Int32($0) }
    guard watchers > 0, changes > 0, watchers <= 5000, changes <= 1000 else {
        throw BenchError(description: "--watchers must be 1...5000 and --changes 1...1000 (bounded load)")
    }

    let initial = UInt64(try metric("mirror_feed_revision", url: url, tls: tls))
    let merged = ClientReports()
    var children: [ClientsProcess] = []
    defer { for child in children { child.stop() } }
    let started = ContinuousClock.now
    for index in 0..<processes {
        let share = watchers / processes + (index < watchers % processes ? 1 : 0)
        var childArguments = ["clients", "--url", url, "--watchers", "\(share)", "--initial", "\(initial)", "--changes", "\(changes)"]
        if wireOnly { childArguments.append("--wire") }
        if let tls { childArguments += ["--tls-cert", tls.certificate, "--tls-key", tls.key, "--tls-ca", tls.ca] }
        children.append(try ClientsProcess(arguments: childArguments, reports: merged))
    }
    guard await merged.wait(timeout: .seconds(180), until: { $0.ready == processes || $0.exited > 0 }), merged.exitedCount == 0 else {
        throw BenchError(description: "not every watcher got the snapshot within 180 s (\(merged.ready) of \(processes) processes ready, \(merged.exitedCount) exited)")
    }
    let connected = ContinuousClock.now - started
    print(String(format: "connected:   %d watchers in %d processes holding revision %llu after %.1f s",
                 watchers, processes, initial, seconds(connected)))

    let bytesBefore = try metric("mirror_feed_bytes_sent_total", url: url, tls: tls)
    let serverCPUBefore = cpuSeconds(pid: serverPID)
    let clientsCPUBefore = children.compactMap { cpuSeconds(pid: $0.pid) }.reduce(0, +)
    var lasts: [Double] = [], firsts: [Double] = []
    for step in 1...changes {
        let revision = initial + UInt64(step)
        let renamed = try writeAtomically(benchState(services: services, step: step), to: statePath)
        guard await merged.wait(timeout: .seconds(10), until: { $0.done[revision]?.processes == processes || $0.exited > 0 }),
              let done = merged.done(revision), done.processes == processes else {
            throw BenchError(description: "change \(step): revision \(revision) not applied by every process within 10 s (\(merged.exitedCount) exited)")
        }
        lasts.append(Double(Int64(done.last) - Int64(renamed)) / 1e6)
        firsts.append(Double(Int64(done.first) - Int64(renamed)) / 1e6)
        try await Task.sleep(for: .milliseconds(30))
    }
    let bytesAfter = try metric("mirror_feed_bytes_sent_total", url: url, tls: tls)
    if let before = serverCPUBefore, let after = cpuSeconds(pid: serverPID) {
        let perChange = (after - before) * 1000 / Double(changes)
        print(String(format: "server CPU:  %.1f ms per change for %d watchers (%.1f us per watcher; includes re-reading the state file)",
                     perChange, watchers, perChange * 1000 / Double(watchers)))
    }
    // Also counts what clients do between changes: next to nothing (bookmarks are 60 s apart).
    let clientsCPU = (children.compactMap { cpuSeconds(pid: $0.pid) }.reduce(0, +) - clientsCPUBefore) * 1000 / Double(changes)
    print(String(format: "clients CPU: %.1f ms per change over all %d watchers (%.1f us per watcher: ",
                 clientsCPU, watchers, clientsCPU * 1000 / Double(watchers)) + (wireOnly ? "receive, find the revision)" : "receive, decode, validate, apply)"))
    let sorted = lasts.sorted(), sortedFirsts = firsts.sorted()
    print(String(format: "propagation: p50 %.1f ms  p99 %.1f ms  max %.1f ms", percentile(sorted, 50), percentile(sorted, 99), sorted.last ?? .nan)
          + "  (file rename -> last of \(watchers) watchers \(wireOnly ? "received it" : "decoded+validated+applied it"), \(changes) changes)")
    print(String(format: "first:       p50 %.1f ms  p99 %.1f ms  (file rename -> first watcher done: poll, parse, diff, publish, one write)",
                 percentile(sortedFirsts, 50), percentile(sortedFirsts, 99)))
    let flat = benchState(services: 0, step: 1).services[0]
    let deltaLine = try FeedEvent.delta(revision: initial + 1, .upsertService(flat)).encodedLine().readableBytes
    let snapshotLine = try FeedEvent.snapshot(epoch: "x", revision: 1, state: benchState(services: services, step: 0)).encodedLine().readableBytes
    print(String(format: "bytes:       %.0f bytes per delta per watcher (event line %d bytes; state %d services, snapshot line %d bytes)",
                 (bytesAfter - bytesBefore) / Double(changes * watchers), deltaLine, services + 1, snapshotLine))
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// What the clients processes reported, merged.
final class ClientReports: Sendable {
    struct Done {
        var processes = 0
        var first: UInt64 = .max
        var last: UInt64 = 0
    }
    struct State {
        var ready = 0
        var exited = 0
        var done: [UInt64: Done] = [:]
    }
    private let state = NIOLockedValueBox(State())

    /// One line from a clients process (see ``WatcherTally``).
    func take(_ line: Substring) {
        let fields = line.split(separator: " ")
        state.withLockedValue { s in
            switch fields.first {
            case "ready": s.ready += 1
            case "applied" where fields.count == 4:
                guard let revision = UInt64(fields[1]), let first = UInt64(fields[2]), let last = UInt64(fields[3]) else { return }
                var done = s.done[revision] ?? Done()
                done.processes += 1
                done.first = min(done.first, first)
                done.last = max(done.last, last)
                s.done[revision] = done
            default: break
            }
        }
    }

    func childExited() { state.withLockedValue { $0.exited += 1 } }

    var ready: Int { state.withLockedValue { $0.ready } }
    var exitedCount: Int { state.withLockedValue { $0.exited } }
    func done(_ revision: UInt64) -> Done? { state.withLockedValue { $0.done[revision] } }

    /// Polls until `condition` holds (true) or `timeout` passes (false). The figures do not
    /// depend on how soon this notices: clients timestamp their own progress.
    func wait(timeout: Duration, until condition: (State) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if state.withLockedValue({ condition($0) }) { return true }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return false
    }
}

/// One `FeedBench clients` child: its stdout lines go to ``ClientReports``; closing its
/// stdin ends it.
final class ClientsProcess: Sendable {
    private let process: Process
    private let input: Pipe
    /// The child's process id, for its CPU time.
    var pid: Int32 { process.processIdentifier }

    init(arguments: [String], reports: ClientReports) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        process.arguments = arguments
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        self.process = process
        self.input = input
        let reader = output.fileHandleForReading
        Thread.detachNewThread {
            var pending = Data()
            while true {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    reports.take(Substring(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)))
                    pending.removeSubrange(pending.startIndex...newline)
                }
            }
            reports.childExited()
        }
    }

    /// Closes the child's stdin (it exits) and waits for it.
    func stop() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}
