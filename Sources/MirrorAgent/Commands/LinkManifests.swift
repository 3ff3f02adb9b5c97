import Foundation
import MirrorKubernetes
import MirrorModel

/// What `mirror-agent link` prints: the remote side's least-privilege access, or the local
/// side's credentials Secret and Link. Pure rendering, apart from ``RemoteToken/read``.
enum LinkManifests {
    /// The labels of `deploy/base/namespace.yaml`. A Namespace printed without them and
    /// applied over the deployed one would lose them (`kubectl apply` removes what the last
    /// applied configuration had and the new one lacks), and the gateways with them.
    static let deployedNamespaceLabels: [(String, String)] = [
        ("pod-security.kubernetes.io/enforce", "privileged"),
    ]
    /// The namespace `deploy/` installs into.
    static let deployedNamespace = "mirror-agent"

    static let partOfLabel = ("app.kubernetes.io/part-of", "mirror-agent")

    /// The remote cluster's side: a ServiceAccount, a long-lived token Secret bound to it, and
    /// a ClusterRole that only reads Services and EndpointSlices, bound to it.
    static func remoteAccess(namespace: String, serviceAccount: String) -> String {
        let namespaceLabels = (namespace == deployedNamespace ? deployedNamespaceLabels : []) + [partOfLabel]
        let labels = YAMLNode.map([partOfLabel, ("app.kubernetes.io/component", "remote-access")].map { ($0.0, .scalar($0.1)) })
        let readOnly = YAMLNode.list(["get", "list", "watch"].map { .scalar($0) })
        let documents: [YAMLNode] = [
            .map([
                ("apiVersion", "v1"), ("kind", "Namespace"),
                ("metadata", .map([("name", .scalar(namespace)),
                                   ("labels", .map(namespaceLabels.map { ($0.0, .scalar($0.1)) }))])),
            ]),
            .map([
                ("apiVersion", "v1"), ("kind", "ServiceAccount"),
                ("metadata", .map([("name", .scalar(serviceAccount)), ("namespace", .scalar(namespace)), ("labels", labels)])),
                // Nothing runs as it here; its token is used from the other cluster.
                ("automountServiceAccountToken", .plain("false")),
            ]),
            .map([
                ("apiVersion", "v1"), ("kind", "Secret"),
                ("metadata", .map([
                    ("name", .scalar(RemoteToken.secretName(serviceAccount: serviceAccount))),
                    ("namespace", .scalar(namespace)), ("labels", labels),
                    ("annotations", .map([("kubernetes.io/service-account.name", .scalar(serviceAccount))])),
                ])),
                ("type", .scalar(RemoteToken.secretType)),
            ]),
            .map([
                ("apiVersion", "rbac.authorization.k8s.io/v1"), ("kind", "ClusterRole"),
                ("metadata", .map([("name", .scalar(serviceAccount)), ("labels", labels)])),
                ("rules", .list([
                    .map([("apiGroups", .list([.scalar("")])), ("resources", .list(["services"])), ("verbs", readOnly)]),
                    .map([("apiGroups", .list(["discovery.k8s.io"])), ("resources", .list(["endpointslices"])), ("verbs", readOnly)]),
                ])),
            ]),
            .map([
                ("apiVersion", "rbac.authorization.k8s.io/v1"), ("kind", "ClusterRoleBinding"),
                ("metadata", .map([("name", .scalar(serviceAccount)), ("labels", labels)])),
                ("roleRef", .map([("apiGroup", "rbac.authorization.k8s.io"), ("kind", "ClusterRole"), ("name", .scalar(serviceAccount))])),
                ("subjects", .list([.map([("kind", "ServiceAccount"), ("name", .scalar(serviceAccount)), ("namespace", .scalar(namespace))])])),
            ]),
        ]
        let header = """
            # The remote side of a mirror-agent Link: apply it in the cluster to mirror FROM
            # (mirror-agent link --remote-rbac | kubectl --context REMOTE apply -f -).
            # ServiceAccount \(namespace)/\(serviceAccount) may get, list and watch Services and
            # EndpointSlices, nothing else; its token (Secret \(RemoteToken.secretName(serviceAccount: serviceAccount)))
            # is what `mirror-agent link --kubeconfig REMOTE --cluster-name NAME` puts in the
            # local cluster's credentials Secret. Deleting that Secret revokes the token.

            """
        return header + YAMLNode.documents(documents)
    }

    /// The local side: the credentials Secret and the Link, for the local cluster.
    struct Local {
        var clusterName: String
        var clusterDomain: String
        /// The local namespace of the Secret and the Link (the feed's).
        var namespace: String
        var gatewayAddresses: [String]
        var gatewayPort: Int
        var probePort: Int
        var credentials: RemoteToken

        static let secretType = "mirror.linkerd.io/remote-kubeconfig"
        /// What `mirror-agent gateway` serves on --probe-listen, probed this often; a probe
        /// taking longer than `probeTimeout` fails, so a gateway whose packets are dropped is
        /// dead after failureThreshold × period (about 9 s), not after 30 s timeouts.
        static let probePath = "/ready"
        static let probePeriod = "3s"
        static let probeTimeout = "2s"
        static let probeFailureThreshold = "3"

        var secretName: String { "cluster-credentials-\(clusterName)" }

        /// A kubeconfig reaching the remote API server as the remote ServiceAccount.
        func kubeconfig() -> String {
            var cluster: [(String, YAMLNode)] = [("server", .scalar(credentials.server))]
            if let ca = credentials.certificateAuthority {
                cluster.append(("certificate-authority-data", .scalar(ca.base64EncodedString())))
            }
            if credentials.insecureSkipTLSVerify { cluster.append(("insecure-skip-tls-verify", .plain("true"))) }
            let user = "\(credentials.serviceAccount)@\(clusterName)"
            return YAMLNode.map([
                ("apiVersion", "v1"), ("kind", "Config"),
                ("clusters", .list([.map([("name", .scalar(clusterName)), ("cluster", .map(cluster))])])),
                ("users", .list([.map([("name", .scalar(user)), ("user", .map([("token", .scalar(credentials.token))]))])])),
                ("contexts", .list([.map([("name", .scalar(clusterName)),
                                          ("context", .map([("cluster", .scalar(clusterName)), ("user", .scalar(user))]))])])),
                ("current-context", .scalar(clusterName)),
            ]).text
        }

        func secret() -> YAMLNode {
            .map([
                ("apiVersion", "v1"), ("kind", "Secret"),
                ("metadata", .map([("name", .scalar(secretName)), ("namespace", .scalar(namespace)),
                                   ("labels", .map([(MirrorTranslator.clusterNameLabel, .scalar(clusterName))]))])),
                ("type", .scalar(Self.secretType)),
                ("data", .map([(KubeSecret.kubeconfigKey, .scalar(Data(kubeconfig().utf8).base64EncodedString()))])),
            ])
        }

        func link() -> YAMLNode {
            func selector(_ selector: LabelSelector) -> YAMLNode {
                .map([("matchLabels", .map((selector.matchLabels ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, .scalar($0.value)) }))])
            }
            return .map([
                ("apiVersion", .scalar(LinkerdLink.resource.apiVersion)), ("kind", .scalar(LinkerdLink.resource.kind)),
                ("metadata", .map([("name", .scalar(clusterName)), ("namespace", .scalar(namespace)),
                                   // The remote runs mirror-agent gateway: wait for each port's gateway port.
                                   ("annotations", .map([(MirrorTranslator.gatewayPortsRequiredAnnotation, .scalar("true"))]))])),
                ("spec", .map([
                    ("targetClusterName", .scalar(clusterName)),
                    ("targetClusterDomain", .scalar(clusterDomain)),
                    ("clusterCredentialsSecret", .scalar(secretName)),
                    ("gatewayAddress", .scalar(gatewayAddresses.joined(separator: ","))),
                    ("gatewayPort", .scalar(String(gatewayPort))),
                    ("probeSpec", .map([
                        ("path", .scalar(Self.probePath)), ("port", .scalar(String(probePort))),
                        ("period", .scalar(Self.probePeriod)), ("timeout", .scalar(Self.probeTimeout)),
                        ("failureThreshold", .scalar(Self.probeFailureThreshold)),
                    ])),
                    ("selector", selector(MirrorTranslator.defaultSelector)),
                    ("remoteDiscoverySelector", selector(MirrorTranslator.defaultRemoteDiscoverySelector)),
                    ("federatedServiceSelector", selector(MirrorTranslator.defaultFederatedServiceSelector)),
                ])),
            ])
        }

        func render() -> String {
            let header = """
                # mirror-agent's Link to cluster \(clusterName): apply it in the LOCAL cluster
                # (mirror-agent link … | kubectl apply -f -), then: mirror-agent check --links
                # The Secret holds the bearer token of \(clusterName)'s ServiceAccount
                # \(credentials.remoteNamespace)/\(credentials.serviceAccount) (read-only access to Services and
                # EndpointSlices): keep this output out of version control.

                """
            return header + YAMLNode.documents([secret(), link()])
        }
    }
}

/// The remote ServiceAccount's token and how to reach the remote API server, read through
/// the operator's kubeconfig of the remote cluster.
struct RemoteToken: Sendable {
    static let secretType = "kubernetes.io/service-account-token"
    static func secretName(serviceAccount: String) -> String { "\(serviceAccount)-token" }

    /// The remote API server, as the local feed will reach it.
    var server: String
    /// PEM bytes of the CA the remote kubeconfig trusts; nil: the system's roots.
    var certificateAuthority: Data?
    var insecureSkipTLSVerify: Bool
    var token: String
    var remoteNamespace: String
    var serviceAccount: String

    /// Reads the token Secret of `serviceAccount` in `namespace` with `path`'s credentials.
    /// Throws a ``LinkError`` telling what to do: apply the remote side, wait for the token,
    /// use credentials that may read Secrets.
    static func read(kubeconfig path: String, context: String?, namespace: String, serviceAccount: String,
                     apiServer: String?, allowPlainHTTP: Bool, timeout: Duration) async throws -> RemoteToken {
        let config = try KubeConfig.load(path: path)
        let connection = try config.connection(context: context)
        // connection() has checked that the context and its cluster exist.
        let contextName = context ?? config.currentContext ?? ""
        guard let clusterName = config.contexts.first(where: { $0.name == contextName })?.cluster,
              let cluster = config.clusters.first(where: { $0.name == clusterName }) else {
            throw LinkError("\(config.source): context \"\(contextName)\" has no cluster")
        }
        var certificateAuthority = cluster.certificateAuthorityData
        if certificateAuthority == nil, let file = cluster.certificateAuthority {
            do {
                certificateAuthority = try Data(contentsOf: URL(fileURLWithPath: file))
            } catch {
                throw LinkError("\(config.source): \(cluster.label): certificate-authority: cannot read \(file)")
            }
        }
        var options = KubeClientOptions()
        options.allowPlainHTTP = allowPlainHTTP
        options.requestTimeout = timeout
        options.connectTimeout = min(timeout, .seconds(10))
        let client = try KubeClient(connection: connection, options: options)
        let secretName = secretName(serviceAccount: serviceAccount)
        let object = "Secret \(namespace)/\(secretName)"
        let remoteSide = "mirror-agent link --remote-rbac --remote-namespace \(namespace) --service-account \(serviceAccount)"
            + " | kubectl --kubeconfig \(path)\(context.map { " --context \($0)" } ?? "") apply -f -"
        let fetched: Result<KubeSecret, any Error>
        do {
            fetched = .success(try await client.get(KubeSecret.self, namespace: namespace, name: secretName))
        } catch {
            fetched = .failure(error)
        }
        try? await client.shutdown()
        let secret: KubeSecret
        switch fetched {
        case .success(let found):
            secret = found
        case .failure(KubeError.notFound):
            throw LinkError("""
                \(object) (the token of ServiceAccount \(serviceAccount)) does not exist in the remote cluster \
                \(connection.server.absoluteString). Apply the remote side first:
                  \(remoteSide)
                then run this command again.
                """)
        case .failure(KubeError.unauthorized(let status)):
            throw LinkError("""
                \(connection.origin) may not read \(object) (\(status)). Run this with a kubeconfig of the remote \
                cluster that may get Secrets in \(namespace) (an administrator's); the printed credentials are the \
                ServiceAccount's token, not these.
                """)
        case .failure(let error):
            throw LinkError("cannot read \(object) from the remote API server \(connection.server.absoluteString) (\(connection.origin)): \(error)")
        }
        guard secret.type == secretType else {
            throw LinkError("""
                \(object) has type \(secret.type ?? "(none)"), not \(secretType), so it holds no ServiceAccount token. \
                Delete it in the remote cluster and apply the remote side again:
                  \(remoteSide)
                """)
        }
        guard let bytes = secret.data?["token"], !bytes.isEmpty else {
            throw LinkError("""
                \(object) has no token yet: the remote cluster's token controller fills it in once ServiceAccount \
                \(namespace)/\(serviceAccount) exists. Apply the remote side if it is not (\(remoteSide)), wait a few \
                seconds, and run this command again.
                """)
        }
        let token = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        var server = connection.server.absoluteString
        if let apiServer { server = apiServer.hasSuffix("/") ? String(apiServer.dropLast()) : apiServer }
        return RemoteToken(server: server, certificateAuthority: certificateAuthority,
                           insecureSkipTLSVerify: cluster.insecureSkipTLSVerify, token: token,
                           remoteNamespace: namespace, serviceAccount: serviceAccount)
    }
}

/// Why `mirror-agent link` cannot print anything: what is wrong and what to do.
struct LinkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A small block-style YAML writer that keeps the order of keys (Kubernetes manifests read
/// best in their usual order) and quotes every string that YAML would read as something
/// else (`"4191"`, `"true"`, `"3s"` stay strings).
indirect enum YAMLNode: ExpressibleByStringLiteral {
    case scalar(String)
    /// Written as is: a boolean or a number.
    case plain(String)
    case map([(String, YAMLNode)])
    case list([YAMLNode])

    init(stringLiteral value: String) { self = .scalar(value) }

    /// Several documents, separated by `---`.
    static func documents(_ nodes: [YAMLNode]) -> String {
        nodes.map(\.text).joined(separator: "---\n")
    }

    var text: String { lines(indent: 0).map { $0 + "\n" }.joined() }

    private func lines(indent: Int) -> [String] {
        let pad = String(repeating: " ", count: indent)
        switch self {
        case .scalar(let value):
            return [pad + Self.quoted(value)]
        case .plain(let value):
            return [pad + value]
        case .map(let entries):
            if entries.isEmpty { return [pad + "{}"] }
            return entries.flatMap { key, value -> [String] in
                let key = pad + Self.quoted(key) + ":"
                switch value {
                case .scalar(let scalar): return [key + " " + Self.quoted(scalar)]
                case .plain(let plain): return [key + " " + plain]
                case .map(let inner) where inner.isEmpty: return [key + " {}"]
                case .list(let items) where items.isEmpty: return [key + " []"]
                case .map: return [key] + value.lines(indent: indent + 2)
                case .list: return [key] + value.lines(indent: indent)
                }
            }
        case .list(let items):
            return items.flatMap { item -> [String] in
                var lines = item.lines(indent: indent + 2)
                if !lines.isEmpty { lines[0] = pad + "- " + lines[0].dropFirst(indent + 2) }
                return lines
            }
        }
    }

    /// Plain when YAML reads it back as the same string, else double-quoted (JSON escapes
    /// are valid YAML). Only for block style: a comma is plain here, not in a flow list.
    static func quoted(_ text: String) -> String {
        let reserved: Set<String> = ["y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"]
        if let first = text.unicodeScalars.first, first.properties.isAlphabetic && first.isASCII || first == "/",
           text.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._/:@+=,-".unicodeScalars.contains($0)) }),
           !text.hasSuffix(":"), !reserved.contains(text.lowercased()) {
            return text
        }
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F: out += String(format: "\\u%04X", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
