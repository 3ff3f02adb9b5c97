import Foundation
import Logging
@testable import MirrorAgent
import NFTables
import Netlink
import Synchronization
import MirrorModel
import MirrorFeed
import Testing

/// Drift repaired on the kernel's change notifications: the monitor itself, then the agent's
/// and the gateway's followers against `nft flush ruleset`, their own commits and other
/// tables, in real namespaces.
@Suite(.serialized) struct DriftMonitorTests {
    // MARK: the monitor

    @Test func monitorNamesTheTableAndTheSender() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let namespace = try TestNamespace("mon")
        let elsewhere = try TestNamespace("mon-x")
        let events = EventLog()
        let monitor = try namespace.run { try RulesetMonitor(onEvent: events.append) }
        defer { monitor.stop() }
        let backend = Unchecked(try namespace.run { try KernelRulesetBackend() })
        let port = try #require(backend.value.commitPort)

        // Our own batch carries our commit socket's port id.
        let mine = TableID(family: .ip, name: "mine")
        _ = try backend.value.commit(Transaction([.addTable(mine)]), generation: nil, marker: nil)
        // Someone else's (nft) carries another one; another namespace is not seen at all.
        try elsewhere.exec(["nft", "add", "table", "ip", "elsewhere"])
        try namespace.exec(["nft", "add table ip6 other; add chain ip6 other c; delete table ip mine"])
        let all = try await events.wait { $0.contains { if case .changed(let c) = $0 { c.table == "mine" && c.message == 2 } else { false } } }

        let changes = all.compactMap { if case .changed(let change) = $0 { change } else { nil } }
        let own = changes.first { $0.table == "mine" && $0.message == 0 }
        #expect(own?.family == 2 && own?.sender == port, "\(changes)")
        let foreign = changes.filter { $0.table == "other" }
        #expect(foreign.map(\.message) == [0, 3], "add table, add chain: \(changes)")
        #expect(foreign.allSatisfy { $0.family == 10 && $0.sender != port })
        let deleted = changes.first { $0.table == "mine" && $0.message == 2 }
        #expect(deleted.map { $0.sender != port } == true, "\(changes)")
        #expect(deleted?.description.hasPrefix("delete table ip mine (port ") == true, "\(deleted?.description ?? "")")
        #expect(!changes.contains { $0.table == "elsewhere" }, "another namespace's change leaked in: \(changes)")

        backend.value.close()
    }

    @Test func aBurstBeyondTheReceiveQueueReportsOverflow() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let namespace = try TestNamespace("mon-ovf")
        let events = EventLog()
        let monitor = try namespace.run { try RulesetMonitor(receiveBufferBytes: 4096, onEvent: events.append) }
        defer { monitor.stop() }
        // Batches of 20,000 elements: 20,000 notifications at once, far beyond 4 KB. Whether the
        // reader thread falls behind depends on scheduling (on an idle core it may drain a
        // batch as fast as the kernel queues it), so up to 8 bounded tries until one overflows.
        let elements = (0 ..< 20_000).map { "10.\(1 + $0 / 62_500).\($0 / 250 % 250).\($0 % 250 + 1)" }.joined(separator: ", ")
        var overflowed = false
        for _ in 0 ..< 8 where !overflowed {
            try Shell.run(["ip", "netns", "exec", namespace.name, "nft", "-f", "-"],
                          input: "table ip other {\n set s {\n  type ipv4_addr\n  elements = { \(elements) }\n }\n}\n")
            try Shell.run(["ip", "netns", "exec", namespace.name, "nft", "delete", "table", "ip", "other"])
            try await Task.sleep(for: .milliseconds(200))
            overflowed = events.contains(.overflowed)
        }
        #expect(overflowed, "ENOBUFS reported as an overflow")
    }

    // MARK: the agent

    @Test func aFlushIsRepairedWithinASecond() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let topology = try TrafficTopology("drift")
        let agent = try AgentUnderTest(namespace: topology.node, component: topology.makeHarness().component)
        defer { agent.stop() }
        try await agent.start(TrafficTopology.state())
        let bar = "http://10.112.0.10/"
        #expect(try Self.get(bar, from: topology.pod) == "paris-gw-1", "bar before the flush")

        // `nft flush ruleset`, as an admin or a firewall reload would: traffic must come back
        // well before the periodic check (an hour here) would notice.
        let start = ContinuousClock.now
        try topology.node.exec(["nft", "flush", "ruleset"])
        var answer: String?
        while answer == nil, ContinuousClock.now - start < .seconds(5) {
            answer = try Self.get(bar, from: topology.pod, maxTime: 0.2)
        }
        let gap = ContinuousClock.now - start
        try await agent.expectRepairs(1, cause: "delete table ip mirror-agent, delete table ip6 mirror-agent by port ")
        let repairedAfter = agent.logs.messages(containing: "drift repaired right after").last?
            .split(separator: " ").first { $0.hasPrefix("after_ms=") } ?? "?"
        print("flush -> traffic back (curl pod -> bar, --max-time 0.2): \(DriftWatch.milliseconds(gap)) ms; agent: repaired \(repairedAfter)")
        #expect(answer == "paris-gw-1", "bar after the flush")
        #expect(gap <= .seconds(1), "traffic back \(gap) after the flush")

        // A deleted table, measured by reading the kernel back.
        let deleted = ContinuousClock.now
        try topology.node.exec(["nft", "delete", "table", "ip", "mirror-agent"])
        let restored = try await agent.waitUntilKernelMatches(since: deleted)
        print("delete table -> repaired (read back): \(DriftWatch.milliseconds(restored)) ms")
        #expect(restored <= .seconds(1))
        try await agent.expectRepairs(2, cause: "cause=delete table ip mirror-agent by port ")
        let detail = await agent.board.parts["nftables"]?.detail["lastDriftRepair"] ?? ""
        #expect(detail.contains("ms after delete table ip mirror-agent by port "), "board: \(detail)")
    }

    @Test func ownCommitsAndOtherTablesTriggerNothing() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let namespace = try TestNamespace("drift-own")
        let logger = Logger(label: "rules")
        let component = try namespace.run { try RulesComponent(dnsAddresses: [], logger: logger) }
        let agent = try AgentUnderTest(namespace: namespace, component: component)
        defer { agent.stop() }
        try await agent.start(MirrorStates.base())

        // The agent's own incremental commit, then a full one (a new snapshot with a change).
        let moved = MirrorStates.editing(MirrorStates.base(), service: "bar") { $0.ports = [ServicePort(port: 81)] }
        try await agent.apply(moved)
        try await agent.apply(MirrorStates.base())
        // Another process's tables.
        try namespace.exec(["nft", "add table ip other; add chain ip other c; add set ip other s { type ipv4_addr; }"])
        try namespace.exec(["nft", "add", "element", "ip", "other", "s", "{ 10.0.0.1 }"])
        try namespace.exec(["nft", "delete", "table", "ip", "other"])
        try await Task.sleep(for: .milliseconds(400))
        #expect(agent.logs.messages(containing: "checking them").isEmpty,
                "a check was triggered: \(agent.logs.messages(containing: "checking them"))")
        #expect(await agent.board.parts["nftables"]?.detail["lastDriftRepair"] == nil)

        // Control: a foreign edit inside the agent's table is noticed and undone.
        try namespace.exec(["nft", "flush", "chain", "ip", "mirror-agent", "nat-prerouting"])
        try await agent.expectRepairs(1, cause: "cause=delete rule in table ip mirror-agent by port ")
        #expect(try await agent.component.kernelMatchesDesired())
    }

    @Test func aWriterUndoingEveryRepairIsSlowedDown() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let namespace = try TestNamespace("drift-fight")
        let logger = Logger(label: "rules")
        let component = try namespace.run { try RulesComponent(dnsAddresses: [], logger: logger) }
        let agent = try AgentUnderTest(namespace: namespace, component: component)
        defer { agent.stop() }
        try await agent.start(MirrorStates.base())
        // Delete the table as soon as each repair restores it: three quick repairs, then a pause.
        var gaps: [Duration] = []
        for _ in 0 ..< 4 {
            let start = ContinuousClock.now
            try namespace.exec(["nft", "delete", "table", "ip6", "mirror-agent"])
            gaps.append(try await agent.waitUntilKernelMatches(since: start))
        }
        print("a writer deleting the table after each repair: repaired after \(gaps.map { DriftWatch.milliseconds($0) + " ms" })")
        #expect(gaps.prefix(3).allSatisfy { $0 < .milliseconds(500) }, "\(gaps)")
        #expect(gaps[3] >= .seconds(1) && gaps[3] < .seconds(3), "\(gaps)")
        #expect(agent.logs.messages(containing: "slowing repairs down").count == 1)
    }

    @Test func withoutTheMonitorThePeriodicCheckStillRepairs() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let namespace = try TestNamespace("drift-nomon")
        let logger = Logger(label: "rules")
        let component = try namespace.run { try RulesComponent(dnsAddresses: [], logger: logger) }
        let agent = try AgentUnderTest(namespace: namespace, component: component, checkInterval: .milliseconds(300)) { _ in
            throw NetlinkError(call: "setsockopt(NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTABLES)", errno: EPERM)
        }
        defer { agent.stop() }
        try await agent.apply(MirrorStates.base())
        try await agent.logs.wait(for: "cannot follow nf_tables changes; drift is repaired by the periodic check only")
        let start = ContinuousClock.now
        try namespace.exec(["nft", "flush", "ruleset"])
        let restored = try await agent.waitUntilKernelMatches(since: start)
        #expect(restored < .seconds(2))
        try await agent.logs.wait(for: "the kernel had been changed behind the agent's back")
    }

    // MARK: the gateway

    @Test func theGatewayRepairsAFlushWithinASecond() async throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let namespace = try TestNamespace("drift-gw")
        let backend = try namespace.run { try KernelRulesetBackend() }
        let rules = GatewayRules(allowedSources: [try #require(IPPrefix("10.60.0.0/24"))], backend: backend)
        let verifier = Unchecked(try namespace.run { try KernelRulesetBackend() })
        let logs = LogCapture()
        let (documents, post) = AsyncStream.makeStream(of: ExportsDocument.self)
        let follower = ExportsFollower(
            source: ScriptedExports(documents: documents), rules: rules,
            board: GatewayBoard(source: "test", allowedSources: [], maxStaleness: .seconds(3600), metrics: GatewayMetrics()),
            driftCheckInterval: .seconds(3600), logger: logs.logger,
            openMonitor: DriftMonitorTests.monitor(in: namespace))
        let task = Task { try await follower.run() }
        defer { task.cancel() }
        post.yield(GatewayTrafficTests.exports())
        try await logs.wait(for: "gateway tables in sync")
        try await logs.wait(for: "following nf_tables changes")

        func matches() async throws -> Bool {
            Ruleset.diff(current: try verifier.value.read(rules.role.tableIDs, counters: false).ruleset, desired: await rules.desired).isEmpty
        }
        #expect(try await matches())
        let start = ContinuousClock.now
        try namespace.exec(["nft", "flush", "ruleset"])
        while !(try await matches()), ContinuousClock.now - start < .seconds(5) { try await Task.sleep(for: .milliseconds(5)) }
        let gap = ContinuousClock.now - start
        print("gateway: flush -> repaired (read back): \(DriftWatch.milliseconds(gap)) ms")
        #expect(try await matches())
        #expect(gap <= .seconds(1))
        try await logs.wait(for: "drift repaired right after another process changed the gateway's tables")
    }

    // MARK: helpers

    /// Opens the monitor inside `namespace`, like `TestNamespace.run`, without keeping the
    /// namespace object alive in the follower (its deinit deletes the namespace).
    static func monitor(in namespace: TestNamespace) -> DriftWatch.OpenMonitor {
        let path = "/var/run/netns/\(namespace.name)"
        return { onEvent in
            let result = Mutex<Result<RulesetMonitor, any Error>?>(nil)
            let done = DispatchSemaphore(value: 0)
            Thread {
                let opened = Result { () throws -> RulesetMonitor in
                    try NetworkNamespace.enter(path: path)
                    return try RulesetMonitor(onEvent: onEvent)
                }
                result.withLock { $0 = opened }
                done.signal()
            }.start()
            done.wait()
            return try result.withLock { $0! }.get()
        }
    }

    /// `curl` from `namespace`: the body, or nil when it failed.
    static func get(_ url: String, from namespace: TestNamespace, maxTime: Double = 3) throws -> String? {
        let output = try namespace.exec(["curl", "-s", "--max-time", "\(maxTime)", url], allowFailure: true)
        let body = output.trimmingCharacters(in: .whitespacesAndNewlines)
        return body.isEmpty ? nil : body
    }
}

/// The real `MirrorFollower` around a `RulesComponent` living in a test namespace: a scripted
/// source, the agent, its board, the monitor opened inside the namespace, and the periodic
/// check an hour away (so only the monitor repairs).
final class AgentUnderTest: @unchecked Sendable {
    let component: RulesComponent
    let board: StatusBoard
    let logs: LogCapture
    private let post: AsyncStream<MirrorUpdate>.Continuation
    private let task: Task<Void, any Error>
    private let verifier: Unchecked<KernelRulesetBackend>
    private var store = MirrorStore()
    private var applied = 0

    init(namespace: TestNamespace, component: RulesComponent, checkInterval: Duration = .seconds(3600),
         openMonitor: DriftWatch.OpenMonitor? = nil) throws {
        let board = StatusBoard(source: "test", parts: ["nftables": true])
        let logs = LogCapture()
        self.board = board
        self.logs = logs
        self.component = component
        verifier = Unchecked(try namespace.run { try KernelRulesetBackend() })
        let (updates, post) = AsyncStream.makeStream(of: MirrorUpdate.self)
        self.post = post
        let agent = NodeAgent(board: board, parts: [.init(name: "nftables", consumer: component)], logger: logs.logger)
        let follower = MirrorFollower(source: ScriptedMirror(updates: updates), agent: agent, rules: component,
                                      driftCheckInterval: checkInterval, logger: logs.logger,
                                      openMonitor: openMonitor ?? DriftMonitorTests.monitor(in: namespace))
        task = Task { try await follower.run() }
    }

    func stop() { task.cancel() }

    /// Applies the first state and waits until the monitor listens.
    func start(_ state: MirrorState) async throws {
        try await apply(state)
        try await logs.wait(for: "following nf_tables changes")
    }

    /// Sends `state` through the source and waits until the agent applied it.
    func apply(_ state: MirrorState) async throws {
        let changes = try store.applySnapshot(state, revision: store.revision + 1)
        post.yield(MirrorUpdate(store: store, changes: changes))
        applied += 1
        let deadline = ContinuousClock.now + .seconds(10)
        while await (board.parts["nftables"]?.syncs ?? 0) < applied {
            guard ContinuousClock.now < deadline else { throw ShellError(command: "apply", status: 1, output: "not applied") }
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(await board.parts["nftables"]?.failures == 0)
    }

    /// Polls the kernel until it holds the agent's tables; returns the time since `start`.
    func waitUntilKernelMatches(since start: ContinuousClock.Instant) async throws -> Duration {
        let desired = await component.desired
        while ContinuousClock.now - start < .seconds(5) {
            let snapshot = try verifier.value.read(MirrorTables.tableIDs, counters: false)
            if Ruleset.diff(current: snapshot.ruleset, desired: desired).isEmpty { break }
            try await Task.sleep(for: .milliseconds(2))
        }
        return ContinuousClock.now - start
    }

    /// Waits until `count` monitor-driven repairs were logged, the last one naming `cause`.
    func expectRepairs(_ count: Int, cause: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let repaired = try await logs.wait(for: "drift repaired right after another process", count: count)
        let last = repaired.last ?? ""
        #expect(last.contains(cause), "\(last)", sourceLocation: sourceLocation)
        #expect(repaired.count == count, "\(repaired)", sourceLocation: sourceLocation)
    }
}

struct ScriptedMirror: MirrorSource {
    let updates: AsyncStream<MirrorUpdate>
    var description: String { "test" }

    func run(onUpdate: @escaping @Sendable (MirrorUpdate) async -> Void) async throws {
        for await update in updates { await onUpdate(update) }
        try await Task.sleep(for: .seconds(3600))
    }
}

struct ScriptedExports: ExportsSource {
    let documents: AsyncStream<ExportsDocument>
    var description: String { "test" }

    func run(onUpdate: @escaping @Sendable (ExportsDocument) async -> Void) async throws {
        for await document in documents { await onUpdate(document) }
        try await Task.sleep(for: .seconds(3600))
    }
}

/// Events from a monitor's thread.
final class EventLog: Sendable {
    private let events = Mutex<[RulesetMonitor.Event]>([])

    func append(_ event: RulesetMonitor.Event) { events.withLock { $0.append(event) } }

    func contains(_ event: RulesetMonitor.Event) -> Bool { events.withLock { $0.contains(event) } }

    /// Waits (up to 5 s) until `condition` holds for the events so far; returns them.
    func wait(_ condition: ([RulesetMonitor.Event]) -> Bool) async throws -> [RulesetMonitor.Event] {
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            let now = events.withLock { $0 }
            if condition(now) { return now }
            guard ContinuousClock.now < deadline else {
                Issue.record("timed out; events: \(now)")
                return now
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

/// Every message logged through ``logger`` (debug and up), with its metadata.
final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    var logger: Logger {
        var logger = Logger(label: "drift-test") { _ in Handler(capture: self) }
        logger.logLevel = .debug
        return logger
    }

    func messages(containing text: String) -> [String] {
        lines.withLock { $0.filter { $0.contains(text) } }
    }

    /// Waits (up to 5 s) until `count` messages contain `text`; returns them.
    @discardableResult
    func wait(for text: String, count: Int = 1) async throws -> [String] {
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            let found = messages(containing: text)
            if found.count >= count { return found }
            guard ContinuousClock.now < deadline else {
                Issue.record("timed out waiting for \(count)× '\(text)'; log:\n\(lines.withLock { $0.joined(separator: "\n") })")
                return found
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    fileprivate func append(_ line: String) { lines.withLock { $0.append(line) } }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var metadataProvider: Logger.MetadataProvider?
        var logLevel: Logger.Level = .debug

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let fields = (event.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            capture.append("\(event.level) \(event.message) \(fields.joined(separator: " "))")
        }
    }
}
