import MirrorModel

/// A Service instance as the record names it: `namespace/name` and its uid (nil for an entry
/// written without one).
struct ServiceInstance: Hashable, Sendable {
    var key: String
    var uid: String?
}

/// What one allocation pass decides: the next record, and why it differs.
struct GatewayPortPlan: Sendable {
    var record: GatewayPortRecord
    /// For the log: `allocated 20001 to default/bar/http`, `freed 20002 (…)`.
    var changes: [String] = []
    var problems: [ExportProblem] = []
    var allocated = 0
    var freed = 0
}

/// The pure decision of an allocation pass: which ports to free and which to hand out.
///
/// Rules:
/// - a port is freed only when its Service instance is gone (`gone`: deleted, or replaced by
///   another instance of the same name); an unexported Service keeps its ports, and so does a
///   Service whose port was removed (it may come back);
/// - a Service port already holding a gateway port keeps it; a new one takes the port its
///   annotation names when that port is in the range and free (a port pinned by hand, or the
///   annotation of a Service re-created from a manifest), else the next free port after the
///   last one handed out, wrapping around the range, so a freed port is reused as late as
///   possible;
/// - a Service gets all of its missing ports in a pass or none (the range exhausted), and a
///   Service whose annotation is someone else's unreadable text gets nothing new; both are
///   reported naming the Service;
/// - a port outside the range (the range was changed) is handed back and replaced, reported.
enum GatewayPortPlanner {
    static func plan(record: GatewayPortRecord, candidates: [ExportCandidate], gone: Set<ServiceInstance>,
                     range: GatewayPortRange) -> GatewayPortPlan {
        var plan = GatewayPortPlan(record: record)
        for (port, owner) in record.owners.sorted(by: { $0.key < $1.key })
        where gone.contains(ServiceInstance(key: owner.serviceKey, uid: owner.uid)) {
            plan.record.free(port)
            plan.freed += 1
            plan.changes.append("freed \(port) of \(owner): the Service is gone")
        }
        for (port, owner) in plan.record.duplicates {
            plan.record.free(port)
            plan.freed += 1
            plan.problems.append(ExportProblem(object: "Service \(owner.serviceKey)",
                                               message: "the allocation record gave port \(owner.portKey) a second gateway port \(port); freed it"))
        }
        for candidate in candidates.sorted(by: { $0.key < $1.key }) where candidate.service.metadata.deletionTimestamp == nil {
            allocate(for: candidate, range: range, plan: &plan)
        }
        return plan
    }

    private static func allocate(for candidate: ExportCandidate, range: GatewayPortRange, plan: inout GatewayPortPlan) {
        if case .malformed(let reason) = candidate.annotation {
            plan.problems.append(ExportProblem(
                object: candidate.object,
                message: "annotation \(MirrorTranslator.gatewayPortsAnnotation) is not readable (\(reason)); this Service is left alone "
                    + "(no new gateway port, annotation not rewritten) until the annotation is fixed or removed"))
            return
        }
        let held = plan.record.ports(ofService: candidate.key)
        // The record's entries are another instance's, which is not known to be gone: the
        // informer's view is behind or ahead of the API; a later pass decides.
        if held.contains(where: { !$0.owner.belongs(to: candidate.uid) }) { return }
        for (port, owner) in held {
            if owner.uid == nil, let uid = candidate.uid {
                var adopted = owner
                adopted.uid = uid
                plan.record.assign(port, to: adopted)
            }
            if !range.contains(port) {
                plan.record.free(port)
                plan.freed += 1
                plan.problems.append(ExportProblem(object: candidate.object,
                                                   message: "gateway port \(port) of \(owner.portKey) is outside the range \(range); replaced"))
            }
        }
        let missing = candidate.portKeys.filter {
            plan.record.port(namespace: candidate.namespace, name: candidate.name, portKey: $0, uid: candidate.uid) == nil
        }
        guard !missing.isEmpty else { return }
        let pinned: [String: Int] = if case .entries(let entries) = candidate.annotation { entries } else { [:] }
        var chosen: [(key: String, port: Int, how: String)] = []
        var taken = Set<Int>()
        var cursor = plan.record.lastAllocated
        var unplaced: [String] = []
        for key in missing {
            if let port = pinned[key] {
                if range.contains(port), plan.record.isFree(port), taken.insert(port).inserted {
                    chosen.append((key, port, "from its annotation"))
                    continue
                }
                let why = !range.contains(port) ? "outside the range \(range)"
                    : plan.record.owners[port].map { "held by \($0)" } ?? "not free"
                plan.changes.append("\(candidate.key) port \(key): its annotation's gateway port \(port) is \(why); another is allocated")
            }
            unplaced.append(key)
        }
        for key in unplaced {
            guard let port = nextFree(after: cursor, in: range, record: plan.record, taken: taken) else {
                let used = range.upper - range.lower + 1 - freeCount(in: range, record: plan.record)
                plan.problems.append(ExportProblem(
                    object: candidate.object,
                    message: "the gateway port range \(range) is exhausted (\(used) in use): port\(missing.count == 1 ? "" : "s") "
                        + "\(missing.joined(separator: ", ")) get\(missing.count == 1 ? "s" : "") no gateway port; "
                        + "widen --gateway-port-range or delete Services that no longer need theirs"))
                return
            }
            taken.insert(port)
            cursor = port
            chosen.append((key, port, "next free"))
        }
        for (key, port, how) in chosen {
            plan.record.assign(port, to: GatewayPortOwner(namespace: candidate.namespace, name: candidate.name, portKey: key,
                                                          uid: candidate.uid))
            plan.allocated += 1
            plan.changes.append("allocated \(port) to \(candidate.key)/\(key) (\(how))")
        }
        if !unplaced.isEmpty { plan.record.lastAllocated = cursor }
    }

    /// The first free port after `cursor`, wrapping around the range once.
    static func nextFree(after cursor: Int?, in range: GatewayPortRange, record: GatewayPortRecord, taken: Set<Int>) -> Int? {
        let start = cursor.map { range.contains($0) ? $0 + 1 : range.lower } ?? range.lower
        let count = range.upper - range.lower + 1
        for step in 0..<count {
            var port = start + step
            if port > range.upper { port -= count }
            if record.isFree(port), !taken.contains(port) { return port }
        }
        return nil
    }

    static func freeCount(in range: GatewayPortRange, record: GatewayPortRecord) -> Int {
        let used = Set(record.owners.keys).union(record.reserved.keys).filter { range.contains($0) }
        return range.upper - range.lower + 1 - used.count
    }
}
