import MirrorModel

/// One port of one Service instance: who holds a gateway port.
public struct GatewayPortOwner: Hashable, Sendable, CustomStringConvertible {
    public var namespace: String
    public var name: String
    /// The service port's key, as the gateway-ports annotation names it: the port's name, or
    /// `<port>/<PROTOCOL>` for an unnamed port.
    public var portKey: String
    /// The Service's uid when the port was handed out: a Service deleted and created again
    /// under the same name is another instance. Nil in an entry written without it.
    public var uid: String?

    public init(namespace: String, name: String, portKey: String, uid: String? = nil) {
        self.namespace = namespace
        self.name = name
        self.portKey = portKey
        self.uid = uid
    }

    /// `namespace/name`.
    public var serviceKey: String { "\(namespace)/\(name)" }
    /// `namespace/name/portKey`, unique in a record.
    var slot: String { "\(namespace)/\(name)/\(portKey)" }

    public var description: String { slot }

    /// Whether this entry belongs to the instance with `uid` (an entry without a uid belongs
    /// to whichever instance exists).
    func belongs(to uid: String?) -> Bool { self.uid == nil || self.uid == uid }
}

/// The allocation record: every gateway port handed out and its owner, kept in the ConfigMap
/// `mirror-agent-gateway-ports` in the feed's namespace and replaced as a whole with its
/// resourceVersion, so two allocators (feed replicas, or a feed and its restarted self) can
/// never both hand out a port: the second write is refused (409) and re-planned.
///
/// Layout (`data`): one key per gateway port, `"20001": "default/bar/http uid=<uid>"`, and
/// `last-allocated`, the port handed out last (the next search starts after it, so a freed
/// port is reused as late as possible). Keys that are not port numbers are someone else's and
/// kept; an entry that cannot be read keeps its port reserved (never handed out, never freed
/// here) and is reported.
public struct GatewayPortRecord: Sendable, Equatable {
    public static let defaultName = "mirror-agent-gateway-ports"
    static let lastAllocatedKey = "last-allocated"

    /// Gateway port → owner.
    public private(set) var owners: [Int: GatewayPortOwner] = [:]
    /// Ports whose entry cannot be read, with the entry's text.
    public private(set) var reserved: [Int: String] = [:]
    /// Keys that are neither port numbers nor ours, kept as they are.
    private(set) var foreign: [String: String] = [:]
    /// The port handed out last.
    var lastAllocated: Int?
    /// What could not be read, for the status.
    public private(set) var problems: [String] = []
    /// Owner slot → its port (the lowest, when an edited record gives one slot several).
    private var bySlot: [String: Int] = [:]

    public init() {}

    /// Reads a ConfigMap's `data`.
    public init(data: [String: String]?) {
        for (key, value) in (data ?? [:]).sorted(by: { $0.key < $1.key }) {
            if key == Self.lastAllocatedKey {
                if let number = Int(value), (1...65535).contains(number) { lastAllocated = number } else {
                    problems.append("\(key): \"\(value)\" is not a port; ignored")
                }
                continue
            }
            guard let port = Int(key), String(port) == key else {
                foreign[key] = value
                continue
            }
            guard (1...65535).contains(port) else {
                problems.append("\(key): not a port number; kept as is")
                foreign[key] = value
                continue
            }
            guard let owner = Self.parseOwner(value) else {
                problems.append("\(key): \"\(value)\" is not namespace/name/port-key [uid=…]; the port stays reserved")
                reserved[port] = value
                continue
            }
            owners[port] = owner
        }
        rebuildIndex()
    }

    /// The ConfigMap `data` for this record.
    public var data: [String: String] {
        var data = foreign
        for (port, text) in reserved { data[String(port)] = text }
        for (port, owner) in owners { data[String(port)] = Self.render(owner) }
        if let lastAllocated { data[Self.lastAllocatedKey] = String(lastAllocated) }
        return data
    }

    /// The gateway port of `namespace/name`'s port `portKey`, for the Service instance `uid`.
    public func port(namespace: String, name: String, portKey: String, uid: String?) -> Int? {
        guard let port = bySlot["\(namespace)/\(name)/\(portKey)"], owners[port]?.belongs(to: uid) == true else { return nil }
        return port
    }

    /// Every port of the Service `namespace/name` (any instance), by port key.
    func ports(ofService key: String) -> [(port: Int, owner: GatewayPortOwner)] {
        owners.filter { $0.value.serviceKey == key }.map { ($0.key, $0.value) }.sorted { $0.port < $1.port }
    }

    /// Whether nobody holds `port` and no unreadable entry reserves it.
    func isFree(_ port: Int) -> Bool { owners[port] == nil && reserved[port] == nil }

    /// Ports (besides the slot's own) that an edited record gives a slot twice: the lowest
    /// stays the slot's; these are extra.
    var duplicates: [(port: Int, owner: GatewayPortOwner)] {
        owners.filter { bySlot[$0.value.slot] != $0.key }.map { ($0.key, $0.value) }.sorted { $0.port < $1.port }
    }

    mutating func assign(_ port: Int, to owner: GatewayPortOwner) {
        owners[port] = owner
        rebuildIndex()
    }

    mutating func free(_ port: Int) {
        owners[port] = nil
        rebuildIndex()
    }

    private mutating func rebuildIndex() {
        bySlot = [:]
        for (port, owner) in owners {
            if let other = bySlot[owner.slot], other < port { continue }
            bySlot[owner.slot] = port
        }
    }

    // MARK: Text

    static func render(_ owner: GatewayPortOwner) -> String {
        owner.uid.map { "\(owner.slot) uid=\($0)" } ?? owner.slot
    }

    /// `namespace/name/port-key` (the key may hold a `/`: `8125/UDP`), then ` uid=…`.
    static func parseOwner(_ text: String) -> GatewayPortOwner? {
        let words = text.split(separator: " ", omittingEmptySubsequences: true)
        guard let path = words.first else { return nil }
        let parts = path.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty, !parts[2].isEmpty else { return nil }
        var uid: String?
        for word in words.dropFirst() {
            guard word.hasPrefix("uid="), word.count > 4, uid == nil else { return nil }
            uid = String(word.dropFirst(4))
        }
        return GatewayPortOwner(namespace: String(parts[0]), name: String(parts[1]), portKey: String(parts[2]), uid: uid)
    }
}
