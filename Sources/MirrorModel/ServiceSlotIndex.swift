/// Which service uses each `ip port/proto` slot, for services kept in an array: the
/// validator's (a state's list) and the store's (its ``ServiceTable``).
///
/// Slots are not stored: an entry is the service's position and the slot's ordinal among
/// ``StateValidator/distinctSlots(of:)``, and a slot is recomputed from the service when a
/// lookup needs to compare. That keeps the index at 8 bytes per bucket; a
/// `[ServiceSlot: ServiceKey]` took about 190 bytes per service at 100k services.
struct ServiceSlotIndex: Sendable {

    private var index = PositionIndex()

    init() {}

    /// The position of the service using `slot`.
    func owner(of slot: ServiceSlot, in services: some ServicePositions) -> Int? {
        index.first(hash: slot.hashValue) { Self.slot(of: services[$0.position], ordinal: $0.ordinal) == slot }?.position
    }

    /// Records that the service at `position` uses `slot`, its `ordinal`-th distinct slot.
    ///
    /// Slots past the millionth of one service are not indexed (a service has one or two
    /// ClusterIPs and a handful of ports; such a state is not a real one).
    mutating func insert(_ slot: ServiceSlot, ordinal: Int, position: Int, in services: some ServicePositions) {
        guard ordinal <= PositionIndex.Entry.maximumOrdinal else { return }
        index.insert(.init(position: position, ordinal: ordinal), hash: slot.hashValue, rehash: Self.rehash(services))
    }

    /// Records every slot of the service at `position`.
    mutating func insertSlots(ofServiceAt position: Int, in services: some ServicePositions) {
        for (ordinal, slot) in StateValidator.distinctSlots(of: services[position]).enumerated() {
            insert(slot, ordinal: ordinal, position: position, in: services)
        }
    }

    /// Forgets every slot of the service at `position` (still in `services`).
    mutating func removeSlots(ofServiceAt position: Int, in services: some ServicePositions) {
        for (ordinal, slot) in StateValidator.distinctSlots(of: services[position]).enumerated() where ordinal <= PositionIndex.Entry.maximumOrdinal {
            index.remove(.init(position: position, ordinal: ordinal), hash: slot.hashValue, rehash: Self.rehash(services))
        }
    }

    /// Follows the service at `old` (in `services`, before the move) to position `new`.
    mutating func moveSlots(ofServiceAt old: Int, to new: Int, in services: some ServicePositions) {
        for (ordinal, slot) in StateValidator.distinctSlots(of: services[old]).enumerated() where ordinal <= PositionIndex.Entry.maximumOrdinal {
            index.move(.init(position: old, ordinal: ordinal), hash: slot.hashValue, to: new)
        }
    }

    /// Makes room for `count` slots without regrowing.
    mutating func reserveCapacity(_ count: Int, in services: some ServicePositions) {
        index.reserveCapacity(count, rehash: Self.rehash(services))
    }

    private static func rehash(_ services: some ServicePositions) -> (PositionIndex.Entry) -> Int {
        { entry in slot(of: services[entry.position], ordinal: entry.ordinal)?.hashValue ?? 0 }
    }

    /// The `ordinal`-th distinct slot of `service`. The first one (most services have only
    /// one) is found without building the list.
    static func slot(of service: MirroredService, ordinal: Int) -> ServiceSlot? {
        if ordinal == 0, let port = service.ports.first {
            for text in service.ips {
                if let ip = IPAddressValue(text) { return ServiceSlot(ip: ip, port: port.port, proto: port.protocol) }
            }
            return nil
        }
        let slots = StateValidator.distinctSlots(of: service)
        return ordinal < slots.count ? slots[ordinal] : nil
    }
}

/// Services by position: a state's array or a store's chunked table.
protocol ServicePositions {
    subscript(position: Int) -> MirroredService { get }
}

extension Array: ServicePositions where Element == MirroredService {}
extension ChunkedArray: ServicePositions where Element == MirroredService {}
