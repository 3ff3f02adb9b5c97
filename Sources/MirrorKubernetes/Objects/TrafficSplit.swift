/// SMI's `TrafficSplit` (`split.smi-spec.io/v1alpha2`, the version Linkerd's SMI extension
/// and its failover operator use): clients address the apex service `spec.service`, and
/// their traffic is shared among `spec.backends` by weight.
///
/// The policy translation (``PolicyTranslator``) reads it the way Linkerd does; the object
/// only carries what was sent. It decodes leniently: a backend whose weight is missing or
/// not an integer keeps the text and is reported by the translation with the split's name,
/// instead of making the whole list undecodable (which would stop every split).
public struct TrafficSplit: KubeObject, Hashable {
    public static let resource = KubeResource(group: "split.smi-spec.io", version: "v1alpha2", plural: "trafficsplits",
                                              kind: "TrafficSplit")

    /// The label Linkerd's failover operator selects its TrafficSplits by; its value is the
    /// operator's Helm release name (`linkerd-failover` by default).
    public static let failoverControlledByLabel = "failover.linkerd.io/controlled-by"
    /// The value of ``failoverControlledByLabel`` Linkerd's chart sets by default.
    public static let failoverControllerName = "linkerd-failover"
    /// The annotation naming the primary backend of a failover split (else the first backend).
    public static let failoverPrimaryServiceAnnotation = "failover.linkerd.io/primary-service"

    public var metadata: ObjectMeta
    public var spec: TrafficSplitSpec

    public init(metadata: ObjectMeta, spec: TrafficSplitSpec = TrafficSplitSpec()) {
        self.metadata = metadata
        self.spec = spec
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        metadata = try container.decode(ObjectMeta.self, forKey: .metadata)
        spec = (try? container.decodeIfPresent(TrafficSplitSpec.self, forKey: .spec)) ?? TrafficSplitSpec()
    }

    /// Whether Linkerd's failover operator manages this split (its label is set).
    public var isFailoverControlled: Bool {
        !(metadata.labels?[Self.failoverControlledByLabel] ?? "").isEmpty
    }

    /// The failover primary: the annotation, else (as the operator reads it) the first backend.
    public var failoverPrimaryService: String? {
        if let name = metadata.annotations?[Self.failoverPrimaryServiceAnnotation], !name.isEmpty { return name }
        return spec.backends.first?.service
    }
}

public struct TrafficSplitSpec: Codable, Sendable, Hashable {
    /// The apex service clients connect to (a Service name in the split's namespace; SMI
    /// also allows its FQDN).
    public var service: String?
    public var backends: [TrafficSplitBackend]
    /// HTTPRouteGroup references: the split then applies to matching HTTP requests only.
    public var matches: [TrafficSplitMatch]?

    public init(service: String? = nil, backends: [TrafficSplitBackend] = [], matches: [TrafficSplitMatch]? = nil) {
        self.service = service
        self.backends = backends
        self.matches = matches
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        service = try? container.decodeIfPresent(String.self, forKey: .service)
        backends = (try? container.decodeIfPresent([TrafficSplitBackend].self, forKey: .backends)) ?? []
        matches = try? container.decodeIfPresent([TrafficSplitMatch].self, forKey: .matches)
    }
}

public struct TrafficSplitBackend: Codable, Sendable, Hashable {
    public var service: String?
    /// The weight, nil when absent or not an integer (see ``weightText``). SMI weights are
    /// relative: they have no fixed total.
    public var weight: Int?
    /// What was sent when it is not an integer (v1alpha1's quantities such as `500m`, text).
    public var weightText: String?

    public init(service: String, weight: Int) {
        self.service = service
        self.weight = weight
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        service = try? container.decodeIfPresent(String.self, forKey: .service)
        if let number = try? container.decodeIfPresent(Int.self, forKey: .weight) {
            weight = number
        } else if let text = try? container.decodeIfPresent(String.self, forKey: .weight) {
            weightText = text
        } else if let number = try? container.decodeIfPresent(Double.self, forKey: .weight) {
            weightText = String(number)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(service, forKey: .service)
        if let weight {
            try container.encode(weight, forKey: .weight)
        } else {
            try container.encodeIfPresent(weightText, forKey: .weight)
        }
    }

    private enum CodingKeys: String, CodingKey { case service, weight }
}

public struct TrafficSplitMatch: Codable, Sendable, Hashable {
    public var kind: String?
    public var name: String?

    public init(kind: String? = nil, name: String? = nil) {
        self.kind = kind
        self.name = name
    }
}
