@testable import MirrorAgent
import NFTables
import MirrorModel
import MirrorFeed

/// Mirror states for the change tests: two remote clusters, one service of each mode.
enum MirrorStates {
    static func base() -> MirrorState {
        MirrorState(
            clusters: [
                Cluster(name: "paris", gateway: Gateway(addresses: ["10.99.1.2"]), masquerade: true),
                Cluster(name: "berlin", gateway: Gateway(addresses: ["10.99.2.2"]), masquerade: true),
            ],
            services: [
                MirroredService(name: "bar", namespace: "default", cluster: "paris", mode: .gateway,
                                ips: ["10.112.0.10"], ports: [ServicePort(name: "http", port: 80, targetPort: 8080)]),
                MirroredService(name: "foo", namespace: "default", cluster: "berlin", mode: .gateway,
                                ips: ["10.112.0.30"], ports: [ServicePort(port: 80)]),
                MirroredService(name: "baz", namespace: "default", cluster: "paris", mode: .remoteDiscovery,
                                ips: ["10.112.0.11"], ports: [ServicePort(port: 80, targetPort: 8080)],
                                endpoints: [Endpoint(ip: "10.20.1.5")]),
                MirroredService(name: "six", namespace: "default", cluster: "paris", mode: .remoteDiscovery,
                                ips: ["fd00:112::6"], ports: [ServicePort(port: 80, targetPort: 8080)],
                                endpoints: [Endpoint(ip: "fd00:20::6")]),
                MirroredService(name: "web", namespace: "default", mode: .federated,
                                ips: ["10.112.0.12", "fd00:112::12"], ports: [ServicePort(port: 80, targetPort: 8080)],
                                endpoints: [Endpoint(ip: "10.20.1.5", cluster: "paris"), Endpoint(ip: "10.30.1.5", cluster: "berlin"),
                                            Endpoint(ip: "fd00:20::5", cluster: "paris"), Endpoint(ip: "fd00:30::5", cluster: "berlin")]),
            ]
        )
    }

    /// Applies `edit` to the service named `name`.
    static func editing(_ state: MirrorState, service name: String, _ edit: (inout MirroredService) -> Void) -> MirrorState {
        var state = state
        if let index = state.services.firstIndex(where: { $0.name == name }) { edit(&state.services[index]) }
        return state
    }

    /// Applies `edit` to the cluster named `name`.
    static func editing(_ state: MirrorState, cluster name: String, _ edit: (inout Cluster) -> Void) -> MirrorState {
        var state = state
        if let index = state.clusters.firstIndex(where: { $0.name == name }) { edit(&state.clusters[index]) }
        return state
    }
}

/// Drives a ``RulesComponent`` like `run` does: each state becomes a snapshot on one store.
final class ComponentHarness: @unchecked Sendable {
    let component: RulesComponent
    private var store = MirrorStore()

    init(component: RulesComponent) {
        self.component = component
    }

    func apply(_ state: MirrorState) async throws -> Transaction {
        let changes = try store.applySnapshot(state, revision: store.revision + 1)
        return try await component.applyAndReport(MirrorUpdate(store: store, changes: changes))
    }
}

extension TransactionSummary {
    /// A summary literal for expectations: `.counts(elementsAdded: 1)`.
    static func counts(chainsAdded: Int = 0, chainsFlushed: Int = 0, chainsDeleted: Int = 0, rulesAdded: Int = 0,
                       elementsAdded: Int = 0, elementsDeleted: Int = 0) -> TransactionSummary {
        var summary = TransactionSummary()
        summary.chainsAdded = chainsAdded
        summary.chainsFlushed = chainsFlushed
        summary.chainsDeleted = chainsDeleted
        summary.rulesAdded = rulesAdded
        summary.elementsAdded = elementsAdded
        summary.elementsDeleted = elementsDeleted
        return summary
    }
}
