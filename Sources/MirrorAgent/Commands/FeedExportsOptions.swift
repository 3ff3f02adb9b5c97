import ArgumentParser
import Logging
import MirrorKubernetes
import MirrorModel

/// `feed --exports kubernetes`: this cluster's own exported Services become the exports
/// document its gateways follow, each service port with a gateway port allocated here.
struct FeedExportsOptions: ParsableArguments {
    @Option(help: ArgumentHelp("This cluster's name as the importing clusters' Links name it (a DNS label), published in the exports document.", valueName: "name"))
    var clusterName: String?

    @Option(help: ArgumentHelp("An address this cluster's gateways listen on (an IP; repeat the flag for several), published in the exports document.", valueName: "ip"))
    var gatewayAddress: [String] = []

    @Option(help: ArgumentHelp("The range gateway ports are allocated from, FROM-TO. Must match the gateways' own --gateway-port-range.", valueName: "from-to"))
    var gatewayPortRange = GatewayPortRange.default.description

    @Option(help: ArgumentHelp("Label selector of the exported Services (gateway mode), in any namespace.", valueName: "selector"))
    var exportSelector = "mirror.linkerd.io/exported=true"

    @Option(help: ArgumentHelp("ConfigMap (in --link-namespace) recording which gateway port belongs to which Service port; also in the feed's Role.", valueName: "name"))
    var gatewayPortsConfigmap = GatewayPortRecord.defaultName

    /// Whether `exports` asks for this source.
    static func isKubernetes(_ exports: String?) -> Bool { exports == "kubernetes" }

    func validate(exports: String?, source: String) throws {
        guard Self.isKubernetes(exports) else {
            let given = [("--cluster-name", clusterName != nil), ("--gateway-address", !gatewayAddress.isEmpty),
                         ("--gateway-port-range", gatewayPortRange != GatewayPortRange.default.description),
                         ("--export-selector", exportSelector != "mirror.linkerd.io/exported=true"),
                         ("--gateway-ports-configmap", gatewayPortsConfigmap != GatewayPortRecord.defaultName)]
            if let flag = given.first(where: { $0.1 })?.0 { throw ValidationError("\(flag) applies to --exports kubernetes only") }
            return
        }
        guard source == "kubernetes" else {
            throw ValidationError("--exports kubernetes needs --source kubernetes (it uses the same cluster connection and namespace)")
        }
        guard clusterName != nil else { throw ValidationError("--exports kubernetes needs --cluster-name (this cluster's name)") }
        guard !gatewayAddress.isEmpty else { throw ValidationError("--exports kubernetes needs --gateway-address (repeat it for each gateway IP)") }
        let problems = try options(namespace: "mirror-agent").problems
        if !problems.isEmpty { throw ValidationError("--exports kubernetes: " + problems.joined(separator: "; ")) }
    }

    /// The source's options, the record in `namespace` (the Links' namespace).
    func options(namespace: String) throws -> KubernetesExportsOptions {
        guard let range = GatewayPortRange(parsing: gatewayPortRange) else {
            throw ValidationError("--gateway-port-range \(gatewayPortRange): expected FROM-TO within 1-65535, e.g. 20000-29999")
        }
        let selector: LabelSelector
        do {
            selector = try LabelSelector(parsing: exportSelector)
        } catch {
            throw ValidationError("--export-selector \(exportSelector): \(error)")
        }
        var options = KubernetesExportsOptions(cluster: clusterName ?? "", gatewayAddresses: gatewayAddress, namespace: namespace)
        options.range = range
        options.selector = selector
        options.recordName = gatewayPortsConfigmap
        return options
    }

    /// The exports source over the feed's own cluster client.
    func makeSource(client: KubeClient, namespace: String, writeQPS: Double, writeBurst: Int, logger: Logger) throws -> KubernetesExportsSource {
        var options = try options(namespace: namespace)
        options.writeQPS = writeQPS
        options.writeBurst = writeBurst
        return try KubernetesExportsSource(client: client, options: options, logger: logger)
    }
}
