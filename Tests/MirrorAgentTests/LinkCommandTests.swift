import Foundation
import MirrorKubernetes
import Testing
import Yams
@testable import MirrorAgent

/// `mirror-agent link` and `mirror-agent check --links`, run as an operator would, against two
/// kmock API servers (Tests/MirrorKubernetesTests/kmock_harness.py): "paris", the remote, over
/// TLS with a bearer token, and "london", the local cluster, over plain HTTP.
@Suite struct LinkCommandTests {
    // MARK: The remote side

    @Test func remoteSideIsLeastPrivilege() throws {
        let result = try AgentProcess.run(["link", "--remote-rbac"])
        #expect(result.status == 0, "\(result.stderr)")
        let documents = try Self.documents(result.stdout)
        #expect(documents.map { $0["kind"] as? String } == ["Namespace", "ServiceAccount", "Secret", "ClusterRole", "ClusterRoleBinding"])
        let namespace = documents[0], account = documents[1], secret = documents[2], role = documents[3], binding = documents[4]
        #expect(Self.string(namespace, "metadata.name") == "mirror-agent")
        #expect(Self.string(account, "metadata.name") == "mirror-agent-remote")
        #expect(Self.string(account, "metadata.namespace") == "mirror-agent")
        #expect(account["automountServiceAccountToken"] as? Bool == false)
        #expect(Self.string(secret, "metadata.name") == "mirror-agent-remote-token")
        #expect(Self.string(secret, "metadata.namespace") == "mirror-agent")
        #expect(Self.string(secret, "type") == "kubernetes.io/service-account-token")
        #expect(((secret["metadata"] as? [String: Any])?["annotations"] as? [String: String])?["kubernetes.io/service-account.name"] == "mirror-agent-remote")
        #expect(secret["data"] == nil, "the token controller fills the token in")

        // Only reading Services and EndpointSlices: no other resource, verb or wildcard.
        let rules = try #require(role["rules"] as? [[String: [String]]])
        #expect(rules.count == 2)
        #expect(rules[0] == ["apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]])
        #expect(rules[1] == ["apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]])
        #expect(role["aggregationRule"] == nil)
        #expect(Self.string(binding, "roleRef.kind") == "ClusterRole")
        #expect(Self.string(binding, "roleRef.name") == Self.string(role, "metadata.name"))
        let subjects = try #require(binding["subjects"] as? [[String: String]])
        #expect(subjects == [["kind": "ServiceAccount", "name": "mirror-agent-remote", "namespace": "mirror-agent"]])

        // Applied over a cluster running deploy/, the Namespace must keep deploy's labels
        // (kubectl apply removes labels the last applied configuration had and this one lacks).
        let deployed = try Self.documents(String(contentsOf: AgentProcess.repositoryRoot.appendingPathComponent("deploy/base/namespace.yaml"), encoding: .utf8))
        let deployedLabels = try #require((deployed.first?["metadata"] as? [String: Any])?["labels"] as? [String: String])
        let labels = (namespace["metadata"] as? [String: Any])?["labels"] as? [String: String] ?? [:]
        for (key, value) in deployedLabels { #expect(labels[key] == value, "namespace label \(key)") }
        let kustomization = try String(contentsOf: AgentProcess.repositoryRoot.appendingPathComponent("deploy/base/kustomization.yaml"), encoding: .utf8)
        if kustomization.contains("app.kubernetes.io/part-of: mirror-agent") { #expect(labels["app.kubernetes.io/part-of"] == "mirror-agent") }

        // Against the Kubernetes schemas, where scripts/validate-deploy.sh's validator is installed.
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        if let validator = path.split(separator: ":").map({ "\($0)/kubernetes-validate" }).first(where: FileManager.default.isExecutableFile) {
            let file = NSTemporaryDirectory() + "remote-rbac-\(UUID().uuidString.prefix(8)).yaml"
            try result.stdout.write(toFile: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: file) }
            let validated = try LabProcess.run(validator, ["--strict", file])
            #expect(validated.status == 0, "\(validated.stdout)\(validated.stderr)")
        }
    }

    @Test func remoteSideFollowsItsFlags() throws {
        let result = try AgentProcess.run(["link", "--remote-rbac", "--remote-namespace", "mirror-remote", "--service-account", "reader"])
        #expect(result.status == 0, "\(result.stderr)")
        let documents = try Self.documents(result.stdout)
        #expect(Self.string(documents[0], "metadata.name") == "mirror-remote")
        #expect(((documents[0]["metadata"] as? [String: Any])?["labels"] as? [String: String])?["pod-security.kubernetes.io/enforce"] == nil,
                "only deploy's own namespace carries deploy's labels")
        #expect(Self.string(documents[1], "metadata.name") == "reader")
        #expect(Self.string(documents[2], "metadata.name") == "reader-token")
        #expect(Self.string(documents[2], "metadata.namespace") == "mirror-remote")
        #expect((documents[4]["subjects"] as? [[String: String]])?.first?["namespace"] == "mirror-remote")
    }

    // MARK: Flags

    @Test(arguments: [
        (["link", "--cluster-name", "paris", "--gateway-address", "10.0.0.1"], "--kubeconfig is required"),
        (["link", "--kubeconfig", "k", "--gateway-address", "10.0.0.1"], "--cluster-name is required"),
        (["link", "--kubeconfig", "k", "--cluster-name", "Paris", "--gateway-address", "10.0.0.1"], "must be a DNS label"),
        (["link", "--kubeconfig", "k", "--cluster-name", "paris"], "gateway nodes"),
        (["link", "--kubeconfig", "k", "--cluster-name", "paris"], "mirror-agent.io/gateway=true"),
        (["link", "--kubeconfig", "k", "--cluster-name", "paris", "--gateway-address", "10.0.0.1,bad_name!"], "--gateway-address bad_name! is neither"),
        (["link", "--kubeconfig", "k", "--cluster-name", "paris", "--gateway-address", "10.0.0.1", "--gateway-port", "0"], "--gateway-port 0 is not a port"),
        (["link", "--kubeconfig", "k", "--cluster-name", "paris", "--gateway-address", "10.0.0.1", "--api-server-address", "paris:6443"], "--api-server-address"),
        (["link", "--remote-rbac", "--kubeconfig", "k"], "--remote-rbac prints the remote side only"),
        (["link", "--remote-rbac", "--remote-namespace", "Bad"], "--remote-namespace \"Bad\""),
        (["link", "--kubeconfig", "/nonexistent/paris.yaml", "--cluster-name", "paris", "--gateway-address", "10.0.0.1"], "kubeconfig /nonexistent/paris.yaml"),
        (["check", "--kubeconfig", "k"], "--kubeconfig applies to --links only"),
        (["check", "--links", "--state", "examples/two-clusters.yaml"], "--links checks the Links only"),
    ])
    func badFlagsAreRefused(arguments: [String], message: String) throws {
        let result = try AgentProcess.run(arguments)
        #expect(result.status != 0, "\(arguments) accepted")
        #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        #expect(result.stdout.isEmpty, "nothing to pipe into kubectl")
    }

    @Test func helpShowsTheSteps() throws {
        let result = try AgentProcess.run(["link", "--help"])
        #expect(result.status == 0)
        for text in ["--remote-rbac", "--kubeconfig", "--cluster-name", "--gateway-address", "--gateway-port", "--namespace",
                     "--remote-namespace", "--service-account", "kubectl --context paris apply -f -", "check --links", "Examples:"] {
            #expect(result.stdout.contains(text), "help mentions \(text)")
        }
        let top = try AgentProcess.run(["--help"])
        #expect(top.stdout.contains("  link "), "mirror-agent --help lists link")
        let check = try AgentProcess.run(["check", "--help"])
        for text in ["--links", "--link-namespace", "--allow-plain-http"] { #expect(check.stdout.contains(text), "check help mentions \(text)") }
    }

    @Test func checkLinksWithoutKubeconfigNamesTheFile() throws {
        let home = NSTemporaryDirectory() + "link-home-\(UUID().uuidString.prefix(8))"
        let result = try AgentProcess.run(["check", "--links"], environment: ["HOME": home, "KUBECONFIG": "", "KUBERNETES_SERVICE_HOST": ""])
        #expect(result.status == 1)
        #expect(result.stdout.contains("× local cluster"), "\(result.stdout)")
        #expect(result.stdout.contains("\(home)/.kube/config"), "\(result.stdout)")
    }

    // MARK: The local side

    @Test func linkFailsUntilTheRemoteSideIsApplied() async throws {
        let lab = try await LinkLab.start()
        defer { lab.stop() }
        let missing = try lab.link()
        #expect(missing.status == 1)
        #expect(missing.stdout.isEmpty)
        #expect(missing.stderr.contains("Secret mirror-agent/mirror-agent-remote-token"), "\(missing.stderr)")
        #expect(missing.stderr.contains("Apply the remote side first"), "\(missing.stderr)")
        #expect(missing.stderr.contains("mirror-agent link --remote-rbac --remote-namespace mirror-agent --service-account mirror-agent-remote | kubectl --kubeconfig \(lab.remoteKubeconfig) apply -f -"), "\(missing.stderr)")

        // The Secret exists but the token controller has not filled it in yet.
        try lab.remote.post("/api/v1/namespaces/mirror-agent/secrets", LinkLab.tokenSecret(token: nil))
        let empty = try lab.link()
        #expect(empty.status == 1)
        #expect(empty.stderr.contains("has no token yet"), "\(empty.stderr)")

        // A Secret of the name that is not a ServiceAccount token.
        try lab.remote.post("/api/v1/namespaces/other/secrets", LinkLab.tokenSecret(token: "x", namespace: "other", type: "Opaque"))
        let opaque = try lab.link(["--remote-namespace", "other"])
        #expect(opaque.status == 1)
        #expect(opaque.stderr.contains("has type Opaque, not kubernetes.io/service-account-token"), "\(opaque.stderr)")

        // Credentials that may not read the Secret.
        let refused = try lab.link(["--kubeconfig", lab.writeRemoteKubeconfig(token: "wrong")])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("may not read Secret mirror-agent/mirror-agent-remote-token"), "\(refused.stderr)")
    }

    @Test func linkOutputIsAValidSecretAndLink() async throws {
        let lab = try await LinkLab.start()
        defer { lab.stop() }
        try lab.remote.post("/api/v1/namespaces/mirror-agent/secrets", LinkLab.tokenSecret(token: "sa-token"))
        // The CA as a file next to the kubeconfig: it is embedded in the printed kubeconfig.
        let result = try lab.link(["--kubeconfig", lab.writeRemoteKubeconfig(token: LinkLab.adminToken, caAsFile: true),
                                   "--gateway-address", "10.99.1.2, 10.99.1.3", "--gateway-address", "gw.paris.example",
                                   "--namespace", "mirror-links"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stdout.contains(LinkLab.adminToken), "the operator's own credentials never leave")
        #expect(result.stderr.contains("a loopback address the local cluster's feed cannot reach"), "\(result.stderr)")
        let documents = try Self.documents(result.stdout)
        #expect(documents.map { $0["kind"] as? String } == ["Secret", "Link"])
        let secret = documents[0], link = documents[1]

        #expect(Self.string(secret, "apiVersion") == "v1")
        #expect(Self.string(secret, "metadata.name") == "cluster-credentials-paris")
        #expect(Self.string(secret, "metadata.namespace") == "mirror-links")
        #expect(Self.string(secret, "type") == "mirror.linkerd.io/remote-kubeconfig")
        let encoded = try #require((secret["data"] as? [String: String])?["kubeconfig"])
        let text = String(decoding: try #require(Data(base64Encoded: encoded)), as: UTF8.self)
        // What the feed does with it: KubeSecret.kubeconfig(), then the current context.
        let config = try KubeConfig.parse(text, source: "printed kubeconfig")
        let connection = try config.connection()
        #expect(connection.server.absoluteString == "https://127.0.0.1:\(lab.remote.port)")
        #expect(try connection.token?.current() == "sa-token")
        #expect(connection.trustRoots?.count == 1)
        #expect(try connection.trustRoots?.first?.toDERBytes() == lab.caCertificateDER())
        #expect(!connection.insecureSkipTLSVerify)
        #expect(connection.clientKey == nil)

        #expect(Self.string(link, "apiVersion") == "multicluster.linkerd.io/v1alpha3")
        #expect(Self.string(link, "metadata.name") == "paris")
        #expect(Self.string(link, "metadata.namespace") == "mirror-links")
        #expect(Self.string(link, "spec.targetClusterName") == "paris")
        #expect(Self.string(link, "spec.targetClusterDomain") == "cluster.local")
        #expect(Self.string(link, "spec.clusterCredentialsSecret") == "cluster-credentials-paris")
        #expect(Self.string(link, "spec.gatewayAddress") == "10.99.1.2,10.99.1.3,gw.paris.example")
        #expect(Self.string(link, "spec.gatewayPort") == "4143")
        #expect(Self.string(link, "spec.probeSpec.path") == "/ready")
        #expect(Self.string(link, "spec.probeSpec.port") == "4191")
        #expect(Self.string(link, "spec.probeSpec.period") == "3s")
        #expect(Self.string(link, "spec.probeSpec.timeout") == "2s")
        #expect(Self.string(link, "spec.probeSpec.failureThreshold") == "3")
        #expect(Self.string(link, "spec.selector.matchLabels.mirror\\.linkerd\\.io/exported") == "true")
        #expect(Self.string(link, "spec.remoteDiscoverySelector.matchLabels.mirror\\.linkerd\\.io/exported") == "remote-discovery")
        #expect(Self.string(link, "spec.federatedServiceSelector.matchLabels.mirror\\.linkerd\\.io/federated") == "member")

        // Every field is declared by the CRD, of its type and pattern; required ones are there.
        let problems = try CRDSchema.load().problems(link)
        #expect(problems.isEmpty, "\(problems)")

        // The Link decodes as the feed reads it.
        let json = try JSONSerialization.data(withJSONObject: link)
        let decoded = try JSONDecoder().decode(LinkerdLink.self, from: json)
        #expect(decoded.spec.gatewayAddresses == ["10.99.1.2", "10.99.1.3", "gw.paris.example"])
        #expect(decoded.spec.gatewayPortNumber == 4143)
    }

    @Test func apiServerAddressReplacesTheKubeconfigsServer() async throws {
        let lab = try await LinkLab.start()
        defer { lab.stop() }
        try lab.remote.post("/api/v1/namespaces/mirror-agent/secrets", LinkLab.tokenSecret(token: "sa-token"))
        let result = try lab.link(["--api-server-address", "https://paris-api.example:6443", "--cluster-domain", "paris.local"])
        #expect(result.status == 0, "\(result.stderr)")
        let documents = try Self.documents(result.stdout)
        let encoded = try #require((documents[0]["data"] as? [String: String])?["kubeconfig"])
        let config = try KubeConfig.parse(String(decoding: try #require(Data(base64Encoded: encoded)), as: UTF8.self), source: "printed")
        #expect(try config.connection().server.absoluteString == "https://paris-api.example:6443")
        #expect(!result.stderr.contains("loopback"), "\(result.stderr)")
        #expect(Self.string(documents[1], "spec.targetClusterDomain") == "paris.local")
    }

    // MARK: check --links

    @Test func checkLinksReportsEveryLink() async throws {
        let lab = try await LinkLab.start()
        defer { lab.stop() }
        try lab.remote.post("/api/v1/namespaces/mirror-agent/secrets", LinkLab.tokenSecret(token: "sa-token"))
        let gateway = try await ProbeTarget.start()
        defer { gateway.stop() }
        let printed = try lab.link(["--gateway-address", "127.0.0.1", "--probe-port", String(gateway.port)])
        #expect(printed.status == 0, "\(printed.stderr)")
        try lab.applyLocally(printed.stdout)
        // From now on only the ServiceAccount's token opens the remote API: the check must be
        // using the printed credentials, not the operator's.
        try lab.remote.setToken("sa-token")

        let healthy = try lab.check()
        #expect(healthy.status == 0, "\(healthy.stdout)\(healthy.stderr)")
        for line in ["√ local cluster", "√ links in mirror-agent", "1: paris",
                     "√ link paris: credentials", "Secret mirror-agent/cluster-credentials-paris: kubeconfig valid (server https://127.0.0.1:\(lab.remote.port), bearer token)",
                     "√ link paris: remote API", "answered in", "√ link paris: remote access", "may list services and endpointslices",
                     "√ link paris: gateway 127.0.0.1:\(gateway.port)", "GET /ready: 200", "all 6 checks passed"] {
            #expect(healthy.stdout.contains(line), "\(line) in:\n\(healthy.stdout)")
        }

        // Broken Links beside it: a missing Secret, a gateway that is not ready and one that
        // is not there, a gateway that never answers (bounded by its probeSpec.timeout).
        try lab.local.post(LinkLab.links, LinkLab.link(name: "berlin", secret: "cluster-credentials-berlin", gateways: []))
        try lab.local.post(LinkLab.links, LinkLab.link(name: "rome", secret: "cluster-credentials-paris", gateways: ["127.0.0.1", "127.0.0.2"],
                                                         probe: ["path": "/not-ready", "port": String(gateway.port), "timeout": "2s"]))
        try lab.local.post(LinkLab.links, LinkLab.link(name: "oslo", secret: "cluster-credentials-paris", gateways: ["127.0.0.1"],
                                                         probe: ["path": "/hang", "port": String(gateway.port), "timeout": "1s"]))
        let started = ContinuousClock.now
        let broken = try lab.check()
        let elapsed = ContinuousClock.now - started
        #expect(broken.status == 1)
        #expect(elapsed < .seconds(8), "the Links are checked at once, each probe bounded: \(elapsed)")
        for line in ["× link berlin: credentials", "Secret mirror-agent/cluster-credentials-berlin not found",
                     "! link berlin: gateway", "no gatewayAddress",
                     "× link rome: gateway 127.0.0.1:\(gateway.port)", "GET /not-ready: 503",
                     "× link rome: gateway 127.0.0.2:\(gateway.port)", "connection refused",
                     "√ link rome: remote access",
                     "× link oslo: gateway 127.0.0.1:\(gateway.port)", "no answer within 1 s",
                     "√ link paris: gateway 127.0.0.1:\(gateway.port)"] {
            #expect(broken.stdout.contains(line), "\(line) in:\n\(broken.stdout)")
        }
        let order = ["link berlin:", "link oslo:", "link paris:", "link rome:"].compactMap { broken.stdout.range(of: $0)?.lowerBound }
        #expect(order == order.sorted() && order.count == 4, "Links in name order")

        // The remote cluster stops accepting the token: reachable, not authorized.
        try lab.remote.setToken("rotated")
        let revoked = try lab.check()
        #expect(revoked.status == 1)
        #expect(revoked.stdout.contains("√ link paris: remote API"), "\(revoked.stdout)")
        #expect(revoked.stdout.contains("× link paris: remote access"), "\(revoked.stdout)")
        #expect(revoked.stdout.contains("401"), "\(revoked.stdout)")

        // The remote API server is gone.
        lab.remote.stop()
        let gone = try lab.check()
        #expect(gone.status == 1)
        #expect(gone.stdout.contains("× link paris: remote API"), "\(gone.stdout)")
        #expect(!gone.stdout.contains("link paris: remote access"), "\(gone.stdout)")
    }

    @Test func checkLinksWithoutLinksWarns() async throws {
        let lab = try await LinkLab.start()
        defer { lab.stop() }
        let result = try lab.check(["--link-namespace", "elsewhere"])
        #expect(result.status == 0, "\(result.stdout)")
        #expect(result.stdout.contains("! links in elsewhere"), "\(result.stdout)")
        // Plain HTTP needs the flag.
        let plain = try AgentProcess.run(["check", "--links", "--kubeconfig", lab.localKubeconfig])
        #expect(plain.status == 1)
        #expect(plain.stdout.contains("--allow-plain-http"), "\(plain.stdout)")
    }

    @Test func checkLinksNamesABrokenKubeconfigInTheSecret() async throws {
        let lab = try await LinkLab.start()
        defer { lab.stop() }
        let kubeconfig = Data("clusters: [{name: p, cluster: {server: ftp://x}}]\n".utf8).base64EncodedString()
        try lab.local.post("/api/v1/namespaces/mirror-agent/secrets", [
            "apiVersion": "v1", "kind": "Secret", "type": "mirror.linkerd.io/remote-kubeconfig",
            "metadata": ["name": "cluster-credentials-paris", "namespace": "mirror-agent"],
            "data": ["kubeconfig": kubeconfig],
        ])
        try lab.local.post(LinkLab.links, LinkLab.link(name: "paris", secret: "cluster-credentials-paris", gateways: []))
        let result = try lab.check()
        #expect(result.status == 1)
        #expect(result.stdout.contains("× link paris: credentials"), "\(result.stdout)")
        #expect(result.stdout.contains("kubeconfig in Secret mirror-agent/cluster-credentials-paris: clusters[0] \"p\": server \"ftp://x\" is not an http(s) URL"), "\(result.stdout)")
    }

    // MARK: Pieces

    @Test(arguments: ["4191", "true", "yes", "No", "off", "~", "null", "3s", "", " x", "x ", "a: b", "a:", "#x", "-x", "x#y", "@x",
                      "[x]", "{x}", "'x'", "\"x\"", "é", "line\nbreak", "tab\t", "1e3", "0x1F", ".inf", "mirror.linkerd.io/exported",
                      "https://127.0.0.1:6443", "eyJhbGciOi.JSUzI1NiJ9-_x", "YWJj+/=="])
    func yamlScalarsReadBackAsWritten(text: String) throws {
        let yaml = YAMLNode.map([("key", .scalar(text)), (text, .scalar("value"))]).text
        let read = try #require(try Yams.load(yaml: yaml) as? [String: Any], "\(yaml)")
        #expect(read["key"] as? String == text, "\(yaml)")
        #expect(read[text] as? String == "value", "\(yaml)")
    }

    @Test func goDurations() {
        #expect(ProbeSettings.duration("3s") == .seconds(3))
        #expect(ProbeSettings.duration("500ms") == .milliseconds(500))
        #expect(ProbeSettings.duration("1m30s") == .seconds(90))
        #expect(ProbeSettings.duration("1.5s") == .milliseconds(1500))
        #expect(ProbeSettings.duration("0") == .zero)
        #expect(ProbeSettings.duration("3") == nil)
        #expect(ProbeSettings.duration("s") == nil)
        #expect(ProbeSettings.duration("3x") == nil)
        let spec = ProbeSettings(LinkerdProbeSpec(path: "ready", port: "99999", period: "5s"))
        #expect(spec.path == "/ready" && spec.port == 4191 && spec.timeout == .seconds(5))
        #expect(spec.problems.count == 1)
    }

    // MARK: Helpers

    static func documents(_ text: String) throws -> [[String: Any]] {
        try Yams.load_all(yaml: text).compactMap { $0 as? [String: Any] }
    }

    /// A dotted path into a parsed document; `\.` is a literal dot (label keys).
    static func string(_ object: [String: Any], _ path: String) -> String? {
        let keys = path.replacingOccurrences(of: "\\.", with: "\u{0}").split(separator: ".").map { $0.replacingOccurrences(of: "\u{0}", with: ".") }
        var current: Any? = object
        for key in keys { current = (current as? [String: Any])?[key] }
        return current as? String
    }
}

/// The Link CRD's openAPIV3Schema (deploy/crds/link-crd.yaml), enough of it to check a Link:
/// unknown fields, types, patterns, enums, required fields.
struct CRDSchema {
    let root: [String: Any]

    static func load() throws -> CRDSchema {
        let text = try String(contentsOf: AgentProcess.repositoryRoot.appendingPathComponent("deploy/crds/link-crd.yaml"), encoding: .utf8)
        let crd = try #require(try Yams.load(yaml: text) as? [String: Any])
        let versions = try #require((crd["spec"] as? [String: Any])?["versions"] as? [[String: Any]])
        let version = try #require(versions.first { $0["name"] as? String == "v1alpha3" })
        return CRDSchema(root: try #require((version["schema"] as? [String: Any])?["openAPIV3Schema"] as? [String: Any]))
    }

    func problems(_ object: [String: Any]) -> [String] {
        var problems: [String] = []
        check(object, root, at: "", &problems)
        return problems
    }

    private func check(_ value: Any, _ schema: [String: Any], at path: String, _ problems: inout [String]) {
        let place = path.isEmpty ? "(root)" : path
        if schema["x-kubernetes-preserve-unknown-fields"] as? Bool == true { return }
        switch schema["type"] as? String {
        case "object":
            guard let object = value as? [String: Any] else { problems.append("\(place): not an object"); return }
            for key in schema["required"] as? [String] ?? [] where object[key] == nil { problems.append("\(place): \(key) is required") }
            let properties = schema["properties"] as? [String: Any]
            let additional = schema["additionalProperties"] as? [String: Any]
            for (key, child) in object {
                if let declared = properties?[key] as? [String: Any] {
                    check(child, declared, at: path + "." + key, &problems)
                } else if let additional {
                    check(child, additional, at: path + "." + key, &problems)
                } else if properties != nil {
                    problems.append("\(place): \(key) is not declared in the CRD")
                }
            }
        case "array":
            guard let items = value as? [Any] else { problems.append("\(place): not an array"); return }
            if let itemSchema = schema["items"] as? [String: Any] {
                for (index, item) in items.enumerated() { check(item, itemSchema, at: "\(path)[\(index)]", &problems) }
            }
        case "string":
            guard let text = value as? String else { problems.append("\(place): not a string (\(value))"); return }
            if let pattern = schema["pattern"] as? String, text.range(of: pattern, options: .regularExpression) == nil {
                problems.append("\(place): \"\(text)\" does not match \(pattern)")
            }
            if let maxLength = schema["maxLength"] as? Int, text.count > maxLength { problems.append("\(place): longer than \(maxLength)") }
            if let allowed = schema["enum"] as? [String], !allowed.contains(text) { problems.append("\(place): not one of \(allowed)") }
        default:
            break
        }
    }
}

// MARK: The lab: two API servers, kubeconfigs for them, a probe target

/// A kmock harness process (Tests/MirrorKubernetesTests/kmock_harness.py), driven with curl.
final class KMockProcess: @unchecked Sendable {
    let port: Int
    let scheme: String
    private let process: Process
    private let stdin: Pipe
    private let directory: String
    private var token: String?
    private let caFile: String?

    static let script = AgentProcess.repositoryRoot.appendingPathComponent("Tests/MirrorKubernetesTests/kmock_harness.py").path

    var url: String { "\(scheme)://127.0.0.1:\(port)" }

    private init(port: Int, scheme: String, process: Process, stdin: Pipe, directory: String, token: String?, caFile: String?) {
        self.port = port
        self.scheme = scheme
        self.process = process
        self.stdin = stdin
        self.directory = directory
        self.token = token
        self.caFile = caFile
    }

    /// Starts the harness on a free port; with `tls` (certificate, key) it serves HTTPS, with
    /// `token` it wants that bearer token. It exits when this process's end of its stdin closes.
    static func start(token: String? = nil, tls: (certificate: String, key: String, ca: String)? = nil) async throws -> KMockProcess {
        let directory = NSTemporaryDirectory() + "link-kmock-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var arguments = ["python3", script, "--port", "0"]
        if let token { arguments += ["--token", token] }
        if let tls { arguments += ["--tls-cert", tls.certificate, "--tls-key", tls.key] }
        let (process, stdin, port) = try await LabProcess.launch(arguments, directory: directory, what: "the kmock harness")
        return KMockProcess(port: port, scheme: tls == nil ? "http" : "https", process: process, stdin: stdin,
                            directory: directory, token: token, caFile: tls?.ca)
    }

    func stop() {
        LabProcess.stop(process, stdin: stdin)
        try? FileManager.default.removeItem(atPath: directory)
    }

    @discardableResult
    func post(_ path: String, _ object: [String: Any]) throws -> String {
        try curl("POST", path, body: JSONSerialization.data(withJSONObject: object))
    }

    func setToken(_ token: String) throws {
        try curl("POST", "/_harness/token", body: JSONSerialization.data(withJSONObject: ["token": token]))
        self.token = token
    }

    @discardableResult
    private func curl(_ method: String, _ path: String, body: Data?) throws -> String {
        var arguments = ["-sS", "--fail-with-body", "-m", "10", "-X", method, "-H", "Content-Type: application/json"]
        if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
        if let caFile { arguments += ["--cacert", caFile] }
        if body != nil { arguments += ["--data-binary", "@-"] }
        let result = try LabProcess.run("/usr/bin/curl", arguments + [url + path], input: body)
        guard result.status == 0 else { throw LabError("curl \(method) \(path): \(result.stdout) \(result.stderr)") }
        return result.stdout
    }
}

/// A stand-in for `mirror-agent gateway`'s probe listener: /ready 200, /not-ready 503,
/// /hang never answers.
final class ProbeTarget: @unchecked Sendable {
    let port: Int
    private let process: Process
    private let stdin: Pipe

    private init(port: Int, process: Process, stdin: Pipe) {
        self.port = port
        self.process = process
        self.stdin = stdin
    }

    static let script = """
        import http.server, sys, threading, time
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == '/hang':
                    time.sleep(60)
                code = 200 if self.path == '/ready' else 503
                self.send_response(code)
                self.send_header('Content-Length', '0')
                self.end_headers()
            def log_message(self, *args):
                pass
        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        server.daemon_threads = True
        print('LISTENING', server.server_address[1], flush=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        sys.stdin.read()
        """

    static func start() async throws -> ProbeTarget {
        let directory = NSTemporaryDirectory() + "link-probe-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let (process, stdin, port) = try await LabProcess.launch(["python3", "-c", script], directory: directory, what: "the probe target")
        return ProbeTarget(port: port, process: process, stdin: stdin)
    }

    func stop() { LabProcess.stop(process, stdin: stdin) }
}

/// The remote cluster "paris" (HTTPS, an administrator token), the local cluster "london"
/// (plain HTTP), a CA and kubeconfigs for both.
final class LinkLab: @unchecked Sendable {
    static let adminToken = "paris-admin"
    static let links = "/apis/multicluster.linkerd.io/v1alpha3/namespaces/mirror-agent/links"

    let directory: String
    let remote: KMockProcess
    let local: KMockProcess
    let remoteKubeconfig: String
    let localKubeconfig: String

    private init(directory: String, remote: KMockProcess, local: KMockProcess, remoteKubeconfig: String, localKubeconfig: String) {
        self.directory = directory
        self.remote = remote
        self.local = local
        self.remoteKubeconfig = remoteKubeconfig
        self.localKubeconfig = localKubeconfig
    }

    static func start() async throws -> LinkLab {
        let directory = NSTemporaryDirectory() + "link-lab-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let script = """
            set -e
            cd '\(directory)'
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=paris-ca \
              -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -keyout ca.key -out ca.pem 2>/dev/null
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=paris-api -keyout server.key -out server.csr 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.pem 2>/dev/null
            """
        let made = try LabProcess.run("/bin/sh", ["-c", script])
        guard made.status == 0 else { throw LabError("openssl: \(made.stderr)") }
        let remote = try await KMockProcess.start(token: adminToken, tls: (directory + "/server.pem", directory + "/server.key", directory + "/ca.pem"))
        let local: KMockProcess
        do {
            local = try await KMockProcess.start()
        } catch {
            remote.stop()
            throw error
        }
        let localKubeconfig = directory + "/london.yaml"
        try """
            apiVersion: v1
            kind: Config
            clusters: [{name: london, cluster: {server: "\(local.url)"}}]
            users: [{name: admin, user: {token: london-admin}}]
            contexts: [{name: london, context: {cluster: london, user: admin}}]
            current-context: london
            """.write(toFile: localKubeconfig, atomically: true, encoding: .utf8)
        let lab = LinkLab(directory: directory, remote: remote, local: local,
                          remoteKubeconfig: directory + "/paris.yaml", localKubeconfig: localKubeconfig)
        _ = try lab.writeRemoteKubeconfig(token: adminToken, path: lab.remoteKubeconfig)
        return lab
    }

    func stop() {
        remote.stop()
        local.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A kubeconfig of paris with `token`, its CA inline or as a file beside it.
    func writeRemoteKubeconfig(token: String, caAsFile: Bool = false, path: String? = nil) throws -> String {
        let path = path ?? directory + "/paris-\(UUID().uuidString.prefix(8)).yaml"
        let ca = caAsFile ? "certificate-authority: ca.pem"
            : "certificate-authority-data: \(try Data(contentsOf: URL(fileURLWithPath: directory + "/ca.pem")).base64EncodedString())"
        try """
            apiVersion: v1
            kind: Config
            clusters:
            - name: paris
              cluster:
                server: \(remote.url)
                \(ca)
            users: [{name: admin, user: {token: \(token)}}]
            contexts: [{name: paris-admin, context: {cluster: paris, user: admin}}]
            current-context: paris-admin
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func caCertificateDER() throws -> [UInt8] {
        let pem = try String(contentsOfFile: directory + "/ca.pem", encoding: .utf8)
        let body = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        return Array(Data(base64Encoded: body) ?? Data())
    }

    /// `mirror-agent link` for paris, with `extra` flags after the defaults (later ones win).
    func link(_ extra: [String] = []) throws -> AgentProcess.Result {
        var arguments = ["link", "--kubeconfig", remoteKubeconfig, "--cluster-name", "paris"]
        if !extra.contains("--gateway-address") { arguments += ["--gateway-address", "192.0.2.10"] }
        // ArgumentParser keeps the last of a repeated single-value option.
        return try AgentProcess.run(arguments + extra)
    }

    func check(_ extra: [String] = []) throws -> AgentProcess.Result {
        try AgentProcess.run(["check", "--links", "--kubeconfig", localKubeconfig, "--allow-plain-http"] + extra,
                             environment: ["KUBERNETES_SERVICE_HOST": ""])
    }

    /// What `kubectl apply -f -` would do with `link`'s output in london.
    func applyLocally(_ yaml: String) throws {
        for document in try Yams.load_all(yaml: yaml).compactMap({ $0 as? [String: Any] }) {
            let metadata = document["metadata"] as? [String: Any] ?? [:]
            let namespace = metadata["namespace"] as? String ?? "default"
            switch document["kind"] as? String {
            case "Secret": try local.post("/api/v1/namespaces/\(namespace)/secrets", document)
            case "Link": try local.post("/apis/multicluster.linkerd.io/v1alpha3/namespaces/\(namespace)/links", document)
            case let kind: throw LabError("unexpected kind \(kind ?? "nil") in the output")
            }
        }
    }

    static func tokenSecret(token: String?, namespace: String = "mirror-agent", type: String = "kubernetes.io/service-account-token") -> [String: Any] {
        var secret: [String: Any] = [
            "apiVersion": "v1", "kind": "Secret", "type": type,
            "metadata": ["name": "mirror-agent-remote-token", "namespace": namespace,
                         "annotations": ["kubernetes.io/service-account.name": "mirror-agent-remote"]],
        ]
        if let token { secret["data"] = ["token": Data(token.utf8).base64EncodedString(), "namespace": Data(namespace.utf8).base64EncodedString()] }
        return secret
    }

    static func link(name: String, secret: String, gateways: [String], probe: [String: String]? = nil) -> [String: Any] {
        var spec: [String: Any] = ["targetClusterName": name, "clusterCredentialsSecret": secret]
        if !gateways.isEmpty { spec["gatewayAddress"] = gateways.joined(separator: ","); spec["gatewayPort"] = "4143" }
        if let probe { spec["probeSpec"] = probe }
        return ["apiVersion": "multicluster.linkerd.io/v1alpha3", "kind": "Link",
                "metadata": ["name": name, "namespace": "mirror-agent"], "spec": spec]
    }
}

struct LabError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Child processes of the lab: output to files read by polling (no readability handlers,
/// which crashed libdispatch in this test process before), stdin held open so the child
/// ends when this process does.
enum LabProcess {
    static func launch(_ arguments: [String], directory: String, what: String) async throws -> (Process, Pipe, Int) {
        let outPath = directory + "/stdout", errPath = directory + "/stderr"
        guard FileManager.default.createFile(atPath: outPath, contents: nil), FileManager.default.createFile(atPath: errPath, contents: nil),
              let stdout = FileHandle(forWritingAtPath: outPath), let stderr = FileHandle(forWritingAtPath: errPath) else {
            throw LabError("cannot create output files in \(directory)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let stdin = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        try? stdout.close()
        try? stderr.close()
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
            if let line = out.split(separator: "\n").first(where: { $0.hasPrefix("LISTENING ") }),
               let port = Int(line.dropFirst("LISTENING ".count).trimmingCharacters(in: .whitespaces)) {
                return (process, stdin, port)
            }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        stop(process, stdin: stdin)
        let errors = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        let hint = errors.contains("No module named 'kmock'") ? " (kmock is missing: scripts/install-deps.sh installs it)" : ""
        throw LabError("\(what) did not start\(hint): \(errors)")
    }

    static func stop(_ process: Process, stdin: Pipe) {
        try? stdin.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning, Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Runs a short command to completion, `input` on its stdin.
    static func run(_ executable: String, _ arguments: [String], input: Data? = nil) throws -> AgentProcess.Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let inPipe = Pipe(), out = Pipe(), err = Pipe()
        process.standardInput = inPipe
        process.standardOutput = out
        process.standardError = err
        try process.run()
        if let input { inPipe.fileHandleForWriting.write(input) }
        try? inPipe.fileHandleForWriting.close()
        // Both pipes read on threads of their own: a full stderr pipe must not block stdout.
        let errors = ErrorCollector()
        let thread = Thread { errors.data = err.fileHandleForReading.readDataToEndOfFile() }
        thread.start()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !errors.done { usleep(1_000) }
        return AgentProcess.Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                                   stderr: String(decoding: errors.data ?? Data(), as: UTF8.self))
    }

    private final class ErrorCollector: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: Data?
        var data: Data? {
            get { lock.withLock { stored } }
            set { lock.withLock { stored = newValue } }
        }
        var done: Bool { data != nil }
    }
}
