import Foundation
import MirrorModel
import NIOConcurrencyHelpers
import Testing
@testable import MirrorKubernetes

/// Gateway ports of this cluster's exported Services, against the emulated API server: the
/// record (ConfigMap) and the annotations the importing clusters read.
@Suite(.serialized)
struct GatewayPortAllocatorTests {
    static var metrics: [String: Any] { ["name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": 9090] }

    @Test func exportedServiceGetsPortsInTheRangeAndTheAnnotationAndASecondPortItsOwn() async throws {
        try await ExportsLab.with { lab in
            try await lab.addService("bar")
            try await lab.allocate()

            let first = try await lab.gatewayPorts("bar")
            let http = try #require(first["http"])
            #expect(GatewayPortRange.default.contains(http))
            #expect(first.count == 1)
            #expect(try await lab.allocations() == [http: "default/bar/http"])
            // The record names the Service instance.
            let uid = try #require(try await lab.service("bar")?.metadata.uid)
            #expect(try await lab.recordData()?[String(http)] == "default/bar/http uid=\(uid)")
            // The annotation is what the importing side reads.
            #expect(try await lab.annotationText("bar") == "http=\(http)")

            // A second port gets its own; the first keeps its gateway port.
            try await lab.server.patch(lab.servicePath("bar"), ["spec": ["ports": [ExportsLab.http, Self.metrics]]])
            try await lab.allocate()
            let second = try await lab.gatewayPorts("bar")
            #expect(second["http"] == http)
            let metrics = try #require(second["metrics"])
            #expect(metrics != http && GatewayPortRange.default.contains(metrics))
            #expect(try await lab.annotationText("bar") == "http=\(http),metrics=\(metrics)")
            #expect(try await lab.allocations() == [http: "default/bar/http", metrics: "default/bar/metrics"])

            // An unnamed UDP port is keyed <port>/<PROTOCOL>, as the importers read it.
            try await lab.addService("dns", namespace: "shop", ports: [["protocol": "UDP", "port": 53, "targetPort": 5353]])
            try await lab.allocate()
            let dns = try #require(try await lab.gatewayPorts("dns", namespace: "shop")["53/UDP"])
            #expect(![http, metrics].contains(dns))
            #expect(try await lab.allocations()[dns] == "shop/dns/53/UDP")
        }
    }

    @Test func unexportedKeepsItsPortsDeletedFreesThemAndFreedPortsAreReusedLast() async throws {
        try await ExportsLab.with { lab in
            let range = try #require(GatewayPortRange(lower: 20000, upper: 20002))
            try await lab.addService("bar")
            try await lab.allocate(range: range)
            #expect(try await lab.gatewayPorts("bar") == ["http": 20000])

            // Unexported: its port stays its own while it exists.
            try await lab.server.patch(lab.servicePath("bar"), ["metadata": ["labels": ["mirror.linkerd.io/exported": NSNull()]]])
            try await lab.allocate(range: range)
            #expect(try await lab.allocations() == [20000: "default/bar/http"])
            try await lab.addService("baz")
            try await lab.allocate(range: range)
            #expect(try await lab.gatewayPorts("baz") == ["http": 20001])
            #expect(try await lab.allocations() == [20000: "default/bar/http", 20001: "default/baz/http"])

            // Deleted: freed. The next Service still gets a never-used port first.
            try await lab.server.delete(lab.servicePath("bar"))
            try await lab.allocate(range: range)
            #expect(try await lab.allocations() == [20001: "default/baz/http"])
            try await lab.addService("qux")
            try await lab.allocate(range: range)
            #expect(try await lab.gatewayPorts("qux") == ["http": 20002])
            // Only then, the range gone round, the freed one.
            try await lab.addService("quux")
            try await lab.allocate(range: range)
            #expect(try await lab.gatewayPorts("quux") == ["http": 20000])

            // A new Service of bar's name is a new instance: the range is full now, so it gets
            // nothing, and says so.
            try await lab.addService("bar")
            let allocator = try await lab.allocate(range: range)
            #expect(try await lab.annotationText("bar") == nil)
            #expect(allocator.report.problems.contains { $0.object == "Service default/bar" && $0.message.contains("exhausted") })
        }
    }

    @Test func aRecreatedServiceIsANewInstance() async throws {
        try await ExportsLab.with { lab in
            try await lab.addService("bar")
            try await lab.allocate()
            let old = try #require(try await lab.gatewayPorts("bar")["http"])
            // Deleted and created again between two passes: the old instance's port is freed
            // and the new one gets another (no annotation came with it).
            try await lab.server.delete(lab.servicePath("bar"))
            try await lab.addService("bar")
            try await lab.allocate()
            let new = try #require(try await lab.gatewayPorts("bar")["http"])
            #expect(new != old)
            #expect(try await lab.allocations() == [new: "default/bar/http"])
            let uid = try #require(try await lab.service("bar")?.metadata.uid)
            #expect(try await lab.recordData()?[String(new)] == "default/bar/http uid=\(uid)")
        }
    }

    @Test func aRestartedAllocatorRereadsAndChangesNothing() async throws {
        try await ExportsLab.with { lab in
            for index in 0..<5 {
                try await lab.addService("svc-\(index)", ports: [ExportsLab.http, Self.metrics])
            }
            try await lab.allocate()
            let record = try await lab.recordData()
            var annotations: [String: String?] = [:]
            for index in 0..<5 { annotations["svc-\(index)"] = try await lab.annotationText("svc-\(index)") }
            #expect(try await lab.allocations().count == 10)
            let before = try await lab.writes().count

            // A new allocator (a restarted feed) over the same Services: no write at all.
            let restarted = try await lab.allocate()
            #expect(try await lab.writes().count == before)
            #expect(try await lab.recordData() == record)
            for index in 0..<5 { #expect(try await lab.annotationText("svc-\(index)") == annotations["svc-\(index)"]) }
            #expect(restarted.report.allocated == 0 && restarted.report.freed == 0 && restarted.report.annotationsWritten == 0)
            #expect(restarted.record?.owners.count == 10)

            // Also a whole exports source started afresh.
            let source = try lab.start()
            #expect(await eventually { source.document?.exports.count == 5 })
            #expect(try await lab.writes().count == before)
            await source.stop()
        }
    }

    @Test func allocatorsRunningAtOnceOverFiftyServicesNeverHandOutTheSamePort() async throws {
        try await ExportsLab.with { lab in
            // A witness of every annotation ever written: a port once given to a Service port
            // must never be seen on another, nor a Service port seen with another port.
            let watcher = try Fixtures.client(lab.server)
            var watch = InformerOptions(labelSelector: "mirror.linkerd.io/exported=true")
            watch.backoff = RetryBackoff(initial: .milliseconds(50), maximum: .milliseconds(300))
            let witness = Informer<KubeService>(client: watcher, options: watch, logger: Fixtures.logger)
            let history = NIOLockedValueBox((byPort: [Int: String](), byOwner: [String: Int](), violations: [String]()))
            let witnessing = Task {
                await witness.run { event in
                    let service: KubeService
                    switch event {
                    case .added(let object), .updated(_, let object): service = object
                    default: return
                    }
                    let ports = ExportsLab.parse(service.metadata.annotations?[ExportsLab.annotation])
                    history.withLockedValue { history in
                        for (key, port) in ports {
                            let owner = "\(service.key)/\(key) uid=\(service.metadata.uid ?? "")"
                            if let other = history.byPort[port], other != owner {
                                history.violations.append("gateway port \(port) seen on \(other) and on \(owner)")
                            }
                            if let other = history.byOwner[owner], other != port {
                                history.violations.append("\(owner) seen with gateway port \(other), then \(port)")
                            }
                            history.byPort[port] = owner
                            history.byOwner[owner] = port
                        }
                    }
                }
            }

            // Two feed replicas, each with its own client and watches.
            let first = try lab.start()
            let second = try lab.start()
            // Two more allocators passing in a tight loop, so that passes overlap all the time.
            let loops = NIOLockedValueBox<[Task<Void, Never>]>([])
            var clients: [KubeClient] = []
            var loopAllocators: [GatewayPortAllocator] = []
            for _ in 0..<2 {
                let (allocator, client) = try lab.allocator()
                clients.append(client)
                loopAllocators.append(allocator)
                let task = Task {
                    while !Task.isCancelled {
                        if let services = try? await client.listAll(KubeService.self, labelSelector: "mirror.linkerd.io/exported=true").items {
                            _ = try? await allocator.reconcile(services)
                        }
                        try? await Task.sleep(for: .milliseconds(5))
                    }
                }
                loops.withLockedValue { $0.append(task) }
            }

            // 50 Services of 2 ports each, created 10 at a time while everybody allocates.
            let started = ContinuousClock.now
            let names = (0..<50).map { "svc-\($0)" }
            for batch in stride(from: 0, to: names.count, by: 10) {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for name in names[batch..<batch + 10] {
                        group.addTask { try await lab.addService(name, ports: [ExportsLab.http, Self.metrics]) }
                    }
                    try await group.waitForAll()
                }
            }
            #expect(await eventually(timeout: .seconds(60)) {
                var complete = 0
                for name in names where (try? await lab.gatewayPorts(name))?.count == 2 { complete += 1 }
                return complete == names.count
            })
            let allocated = ContinuousClock.now - started
            for task in loops.withLockedValue({ $0 }) { task.cancel() }
            for task in loops.withLockedValue({ $0 }) { await task.value }
            for client in clients { try? await client.shutdown() }
            // Let the sources settle on the final state.
            #expect(await eventually(timeout: .seconds(20)) {
                first.document?.exports.count == 50 && first.document == second.document
            })

            witnessing.cancel()
            await witnessing.value
            try? await watcher.shutdown()
            let witnessed = history.withLockedValue { $0 }
            #expect(witnessed.violations.isEmpty, "\(witnessed.violations.prefix(10))")
            #expect(witnessed.byPort.count == 100)

            // Every annotation's port is unique, in the range, and is the record's for that port.
            let record = try await lab.allocations()
            var seen: [Int: String] = [:]
            for name in names {
                let ports = try await lab.gatewayPorts(name)
                #expect(ports.count == 2)
                for (key, port) in ports {
                    #expect(GatewayPortRange.default.contains(port))
                    #expect(seen[port] == nil, "gateway port \(port) given to both \(seen[port] ?? "") and \(name)/\(key)")
                    seen[port] = "\(name)/\(key)"
                    #expect(record[port] == "default/\(name)/\(key)")
                }
            }
            #expect(seen.count == 100)
            #expect(record.count == 100)
            // The record, keyed by port, cannot hold one twice; nor may it give one port key two.
            #expect(Set(record.values).count == 100)
            // The published documents agree with the annotations.
            for service in first.document?.exports ?? [] {
                let annotation = try await lab.gatewayPorts(service.name)
                for port in service.ports { #expect(annotation[port.name ?? ""] == port.gatewayPort) }
            }
            let conflicts = first.source.allocator.report.conflicts + second.source.allocator.report.conflicts
                + loopAllocators.reduce(0) { $0 + $1.report.conflicts }
            print("four allocators over 50 Services: every port annotated \(allocated) after the first create; "
                  + "\(conflicts) record writes refused (409) and re-planned")
            await first.stop()
            await second.stop()
        }
    }

    @Test func anExhaustedRangeIsReportedAndAServiceGetsAllItsPortsOrNone() async throws {
        try await ExportsLab.with { lab in
            let range = try #require(GatewayPortRange(lower: 20000, upper: 20002))
            try await lab.addService("a", ports: [ExportsLab.http, Self.metrics])
            try await lab.addService("b", ports: [ExportsLab.http, Self.metrics])
            try await lab.addService("c")
            let allocator = try await lab.allocate(range: range)
            #expect(try await lab.gatewayPorts("a") == ["http": 20000, "metrics": 20001])
            // b needs two, one is left: b gets none (not one of two); c, after it, gets it.
            #expect(try await lab.annotationText("b") == nil)
            #expect(try await lab.gatewayPorts("c") == ["http": 20002])
            let problem = try #require(allocator.report.problems.first { $0.object == "Service default/b" })
            #expect(problem.description.contains("Service default/b"))
            #expect(problem.message.contains("20000-20002 is exhausted"))
            #expect(problem.message.contains("http, metrics"))
            #expect(try await lab.allocations().count == 3)
        }
    }

    @Test func aMalformedAnnotationIsReportedAndTheServiceLeftAlone() async throws {
        try await ExportsLab.with { lab in
            try await lab.addService("odd", annotations: [ExportsLab.annotation: "http=twenty"])
            try await lab.addService("bar")
            let allocator = try await lab.allocate()
            // bar is served; odd is reported by name, its annotation untouched, nothing allocated.
            #expect(try await lab.gatewayPorts("bar")["http"] != nil)
            #expect(try await lab.annotationText("odd") == "http=twenty")
            #expect(try await lab.allocations().values.contains("default/odd/http") == false)
            let problem = try #require(allocator.report.problems.first { $0.object == "Service default/odd" })
            #expect(problem.message.contains("\"http=twenty\" is not key=port"))
            #expect(allocator.report.lastError == nil)

            // Fixed by removing it: the next pass allocates.
            try await lab.server.patch(lab.servicePath("odd"), ["metadata": ["annotations": [ExportsLab.annotation: NSNull()]]])
            let next = try await lab.allocate()
            #expect(try await lab.gatewayPorts("odd")["http"] != nil)
            #expect(!next.report.problems.contains { $0.object == "Service default/odd" })
        }
    }

    @Test func aPinnedPortIsAdoptedAndACopiedOneIsReplaced() async throws {
        try await ExportsLab.with { lab in
            // Pinned by hand (or re-created from a manifest): the annotation's port when free.
            try await lab.addService("pinned", annotations: [ExportsLab.annotation: "http=20500"])
            try await lab.allocate()
            #expect(try await lab.allocations() == [20500: "default/pinned/http"])
            #expect(try await lab.annotationText("pinned") == "http=20500")
            // Copied from pinned's manifest: that port is taken, so another one, written over it.
            try await lab.addService("copy", annotations: [ExportsLab.annotation: "http=20500"])
            try await lab.allocate()
            let copy = try #require(try await lab.gatewayPorts("copy")["http"])
            #expect(copy != 20500)
            #expect(try await lab.allocations()[copy] == "default/copy/http")
            #expect(try await lab.gatewayPorts("pinned") == ["http": 20500])
        }
    }

    @Test func annotationWritesKeepTheServiceFieldsTheModelDoesNotKnow() async throws {
        try await ExportsLab.with { lab in
            var object = SourceLab.service("bar", labels: Fixtures.exported)
            var spec = try #require(object["spec"] as? [String: Any])
            spec["sessionAffinity"] = "ClientIP"
            spec["externalTrafficPolicy"] = "Local"
            object["spec"] = spec
            var metadata = try #require(object["metadata"] as? [String: Any])
            metadata["finalizers"] = ["example.com/keep"]
            metadata["annotations"] = ["team": "payments"]
            object["metadata"] = metadata
            try await lab.server.create(SourceLab.servicesPath("default"), object)
            try await lab.allocate()
            let raw = try await lab.client.get(RawKubeObject<KubeService>.self, namespace: "default", name: "bar")
            let text = String(decoding: try JSONEncoder().encode(raw), as: UTF8.self)
            #expect(text.contains("\"sessionAffinity\":\"ClientIP\""))
            #expect(text.contains("\"externalTrafficPolicy\":\"Local\""))
            #expect(text.contains("example.com\\/keep") || text.contains("example.com/keep"))
            #expect(raw.metadata.annotations?["team"] == "payments")
            #expect(raw.metadata.annotations?[ExportsLab.annotation] != nil)
        }
    }

    // MARK: The pure parts

    @Test func annotationIsReadAsTheImportersReadItAndRefusedAsAWholeWhenUnreadable() {
        let ports = [ServicePort(name: "http", protocol: .tcp, port: 80), ServicePort(protocol: .udp, port: 53),
                     ServicePort(protocol: .tcp, port: 53)]
        #expect(GatewayPortsAnnotation.read("http=20001, 53/UDP=20002", ports: ports) == .entries(["http": 20001, "53/UDP": 20002]))
        // A bare port number means every protocol of it; a stale entry is ignored.
        #expect(GatewayPortsAnnotation.read("53=20003,gone=20009", ports: ports) == .entries(["53/UDP": 20003, "53/TCP": 20003]))
        #expect(GatewayPortsAnnotation.read("", ports: ports) == .entries([:]))
        for text in ["http", "http=x", "http=70000", "=20001", "53/XTP=20001", "http=20001,http=20002"] {
            guard case .malformed = GatewayPortsAnnotation.read(text, ports: ports) else {
                Issue.record("\(text) was read")
                continue
            }
        }
        #expect(GatewayPortsAnnotation.render([("http", 20001), ("53/UDP", 20002)]) == "http=20001,53/UDP=20002")
        #expect(GatewayPortsAnnotation.render([]) == nil)
    }

    @Test func recordRoundTripsAndKeepsWhatItCannotRead() {
        let data = ["20001": "default/bar/http uid=u1", "20002": "shop/dns/53/UDP", "20003": "junk",
                    "last-allocated": "20002", "note": "x"]
        let record = GatewayPortRecord(data: data)
        #expect(record.owners[20001] == GatewayPortOwner(namespace: "default", name: "bar", portKey: "http", uid: "u1"))
        #expect(record.owners[20002] == GatewayPortOwner(namespace: "shop", name: "dns", portKey: "53/UDP"))
        #expect(record.reserved == [20003: "junk"])
        #expect(!record.isFree(20003))
        #expect(record.data == data)
        #expect(record.port(namespace: "default", name: "bar", portKey: "http", uid: "u1") == 20001)
        #expect(record.port(namespace: "default", name: "bar", portKey: "http", uid: "u2") == nil)
        #expect(record.port(namespace: "shop", name: "dns", portKey: "53/UDP", uid: "any") == 20002)
        #expect(record.problems.count == 1)
    }

    @Test func exportSelectorTextParsesAsTheAPIReadsIt() throws {
        let selector = try LabelSelector(parsing: "mirror.linkerd.io/exported=true, tier in (a,b),env!=dev,team,!legacy")
        #expect(try selector.matches(["mirror.linkerd.io/exported": "true", "tier": "a", "team": "x"]))
        #expect(try !selector.matches(["mirror.linkerd.io/exported": "true", "tier": "a", "team": "x", "env": "dev"]))
        #expect(try !selector.matches(["mirror.linkerd.io/exported": "true", "tier": "c", "team": "x"]))
        #expect(try !selector.matches(["mirror.linkerd.io/exported": "true", "tier": "a", "team": "x", "legacy": ""]))
        #expect(try selector.queryText() == "mirror.linkerd.io/exported=true,tier in (a,b),env notin (dev),team,!legacy")
        for bad in ["", "a=b,", "a in b", "-a=b", "a=(b"] {
            #expect(throws: LabelSelectorError.self) { try LabelSelector(parsing: bad) }
        }
    }

    @Test func anUnreadableRecordEntryKeepsItsPortReserved() async throws {
        try await ExportsLab.with { lab in
            let range = try #require(GatewayPortRange(lower: 20000, upper: 20001))
            try await lab.server.create(ExportsLab.configMapsPath, [
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": ["name": GatewayPortRecord.defaultName, "namespace": ExportsLab.namespace],
                "data": ["20000": "garbage", "note": "someone's"],
            ])
            try await lab.addService("bar")
            let allocator = try await lab.allocate(range: range)
            #expect(try await lab.gatewayPorts("bar") == ["http": 20001])
            let data = try #require(try await lab.recordData())
            #expect(data["20000"] == "garbage")
            #expect(data["note"] == "someone's")
            #expect(allocator.report.problems.contains { $0.object.contains(GatewayPortRecord.defaultName) && $0.message.contains("20000") })
        }
    }
}
