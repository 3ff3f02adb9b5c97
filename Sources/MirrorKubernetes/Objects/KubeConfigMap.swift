/// A core/v1 ConfigMap: the feed keeps its gateway-port allocation record in one
/// (``GatewayPortRecord``), replaced as a whole with its resourceVersion.
public struct KubeConfigMap: KubeObject, Hashable {
    public static let resource = KubeResource(group: "", version: "v1", plural: "configmaps", kind: "ConfigMap")

    public var metadata: ObjectMeta
    public var data: [String: String]?
    /// Base64 text on the wire, kept as is so a replace does not lose it.
    public var binaryData: [String: String]?
    public var immutable: Bool?

    public init(metadata: ObjectMeta, data: [String: String]? = nil) {
        self.metadata = metadata
        self.data = data
    }
}
