import Foundation
import Testing
@testable import MirrorKubernetes

/// kubeconfig files and strings, the in-cluster configuration, and every error naming its
/// source and field.
struct KubeConfigTests {
    /// A kubeconfig with two contexts: `paris` (CA data, client certificate data, namespace)
    /// and `berlin` (CA file and token file, both relative to the kubeconfig's directory).
    static func goodConfig(_ pki: TestPKI) throws -> String {
        """
        apiVersion: v1
        kind: Config
        current-context: paris
        clusters:
        - name: paris
          cluster:
            server: https://127.0.0.1:6443
            certificate-authority-data: \(try pki.base64(pki.ca))
        - name: berlin
          cluster:
            server: https://berlin.example:443/
            certificate-authority: ca.pem
        users:
        - name: admin
          user:
            client-certificate-data: \(try pki.base64(pki.clientCert))
            client-key-data: \(try pki.base64(pki.clientKey))
        - name: reader
          user:
            tokenFile: tokens/reader
        contexts:
        - name: paris
          context: {cluster: paris, user: admin, namespace: linkerd-multicluster}
        - name: berlin
          context: {cluster: berlin, user: reader}
        preferences: {}
        """
    }

    @Test func readsClustersUsersAndContextsWithTheContextOverride() throws {
        let pki = try TestPKI.shared()
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory + "/tokens", withIntermediateDirectories: true)
        try "reader-token\n".write(toFile: directory + "/tokens/reader", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: pki.ca, toPath: directory + "/ca.pem")
        try Self.goodConfig(pki).write(toFile: directory + "/config", atomically: true, encoding: .utf8)

        let config = try KubeConfig.load(path: directory + "/config")
        #expect(config.clusters.map(\.name) == ["paris", "berlin"])
        #expect(config.users.map(\.name) == ["admin", "reader"])
        #expect(config.currentContext == "paris")

        let paris = try config.connection()
        #expect(paris.server.absoluteString == "https://127.0.0.1:6443")
        #expect(paris.namespace == "linkerd-multicluster")
        #expect(paris.trustRoots?.count == 1)
        #expect(paris.clientKey != nil && paris.clientCertificateChain.count == 1)
        #expect(paris.token == nil)
        #expect(paris.origin == "kubeconfig \(directory)/config context \"paris\"")

        let berlin = try config.connection(context: "berlin")
        #expect(berlin.server.absoluteString == "https://berlin.example:443")
        #expect(berlin.trustRoots?.count == 1)
        #expect(berlin.clientKey == nil)
        #expect(try berlin.token?.current() == "reader-token")
        #expect(berlin.token?.path == directory + "/tokens/reader")
    }

    /// Parse-time errors: every problem of a file at once, each with its place.
    @Test(arguments: [
        ("users:\n- name: admin\n  user:\n    client-key-data: '%%%'\n",
         #"users[0] "admin": client-key-data is not valid base64"#),
        ("clusters:\n- name: paris\n  cluster:\n    server: https://a\n    certificate-authority-data: not-base64!\n",
         #"clusters[0] "paris": certificate-authority-data is not valid base64"#),
        ("clusters:\n- name: paris\n  cluster: {}\n", #"clusters[0] "paris": server is missing"#),
        ("clusters:\n- name: paris\n  cluster: {server: 'ftp://x'}\n", #"clusters[0] "paris": server "ftp://x" is not an http(s) URL"#),
        ("clusters:\n- name: paris\n  cluster: {server: [a]}\n", #"clusters[0] "paris": server must be a string"#),
        ("clusters:\n- name: paris\n  cluster: {server: 'https://a', insecure-skip-tls-verify: maybe}\n",
         #"clusters[0] "paris": insecure-skip-tls-verify must be true or false"#),
        ("clusters: {paris: {}}\n", "clusters: must be a list"),
        ("clusters:\n- cluster: {server: 'https://a'}\n", "clusters[0]: name is missing"),
        ("users:\n- name: admin\n  user: token\n", #"users[0] "admin": user must be a map"#),
        ("contexts:\n- name: x\n  context: {user: admin}\n", #"contexts[0] "x": cluster is missing"#),
        ("clusters:\n- name: a\n  cluster: {server: 'https://a'}\n- name: a\n  cluster: {server: 'https://b'}\n",
         #"clusters[1] "a": the name is used twice"#),
        ("clusters: [\n", "invalid YAML"),
        ("- just\n- a list\n", "must be a map"),
    ])
    func aBadFieldIsNamedWithTheFile(yaml: String, expected: String) throws {
        let error = #expect(throws: KubeConfigError.self) { try KubeConfig.parse(yaml, source: "kubeconfig /etc/k.yaml") }
        #expect(error?.description.hasPrefix("kubeconfig /etc/k.yaml: " + expected) == true, "\(String(describing: error))")
    }

    @Test func everyProblemOfAFileIsListed() throws {
        let yaml = """
            clusters:
            - name: paris
              cluster: {certificate-authority-data: '!!'}
            users:
            - name: admin
              user: {client-key-data: '%%'}
            """
        let error = #expect(throws: KubeConfigError.self) { try KubeConfig.parse(yaml, source: "kubeconfig k") }
        #expect(error?.issues == [#"clusters[0] "paris": server is missing"#,
                                  #"clusters[0] "paris": certificate-authority-data is not valid base64"#,
                                  #"users[0] "admin": client-key-data is not valid base64"#])
    }

    /// Errors found when a context is used: missing references, unreadable files, bad PEM,
    /// half a client certificate, unsupported authentication.
    @Test(arguments: [
        ("", nil as String?, "current-context is not set and no context was given"),
        ("", "nope", #"context "nope" not found (contexts: c)"#),
        ("cluster: other", "c", #"contexts[0] "c": cluster "other" not found"#),
        ("user: ghost", "c", #"contexts[0] "c": user "ghost" not found"#),
        ("user: u|client-certificate-data: $CERT", "c", #"users[0] "u": client-certificate needs client-key"#),
        ("user: u|client-certificate-data: $CERT|client-key-data: aGVsbG8=", "c", #"users[0] "u": client-key-data is not a PEM private key"#),
        ("user: u|client-key: /nonexistent/key.pem|client-certificate-data: $CERT", "c",
         #"users[0] "u": client-key: cannot read /nonexistent/key.pem"#),
        ("ca: certificate-authority-data: aGVsbG8=", "c", #"clusters[0] "k": certificate-authority-data holds no PEM certificate"#),
        ("ca: certificate-authority: /nonexistent/ca.pem", "c", #"clusters[0] "k": certificate-authority: cannot read /nonexistent/ca.pem"#),
        ("ca: certificate-authority-data: $CA|ca: insecure-skip-tls-verify: true", "c",
         #"clusters[0] "k": insecure-skip-tls-verify cannot be used with a certificate authority"#),
        ("user: u|tokenFile: /nonexistent/token", "c", #"users[0] "u": tokenFile: cannot read token file /nonexistent/token"#),
        ("user: u|exec: {command: aws}", "c", #"users[0] "u": exec is not supported"#),
        ("ca: proxy-url: http://proxy:3128", "c", #"clusters[0] "k": proxy-url is not supported"#),
    ])
    func aBadContextIsNamedWhenUsed(spec: String, context: String?, expected: String) throws {
        let pki = try TestPKI.shared()
        // spec: `|`-separated lines; `user: X` names the context's user, `cluster: X` its cluster,
        // `ca: field` adds to the cluster, anything else to the user.
        var contextFields = ["cluster: k"], clusterFields = ["server: https://127.0.0.1:6443"], userFields: [String] = []
        var userName: String?
        var currentContext = "c"
        if spec.isEmpty, context == nil { currentContext = "" }
        for line in spec.split(separator: "|").map(String.init) {
            let value = line.replacingOccurrences(of: "$CERT", with: try pki.base64(pki.clientCert))
                .replacingOccurrences(of: "$CA", with: try pki.base64(pki.ca))
            if value.hasPrefix("user: ") {
                userName = String(value.dropFirst(6))
                contextFields.append(value)
            } else if value.hasPrefix("cluster: ") {
                contextFields[0] = value
            } else if value.hasPrefix("ca: ") {
                clusterFields.append(String(value.dropFirst(4)))
            } else {
                userFields.append(value)
            }
        }
        var yaml = "current-context: '\(currentContext)'\nclusters:\n- name: k\n  cluster:\n"
        yaml += clusterFields.map { "    \($0)\n" }.joined()
        yaml += "contexts:\n- name: c\n  context:\n" + contextFields.map { "    \($0)\n" }.joined()
        if let userName, userName != "ghost" {
            yaml += "users:\n- name: \(userName)\n  user:\n" + (userFields.isEmpty ? "    {}\n" : userFields.map { "    \($0)\n" }.joined())
        }
        let config = try KubeConfig.parse(yaml, source: "kubeconfig /k")
        let error = #expect(throws: KubeConfigError.self) { try config.connection(context: context) }
        #expect(error?.description.hasPrefix("kubeconfig /k: " + expected) == true, "\(String(describing: error))\n\(yaml)")
    }

    /// Linkerd's Link credentials Secret holds a kubeconfig under `kubeconfig`.
    @Test func aLinkCredentialsSecretCarriesAKubeconfig() throws {
        let pki = try TestPKI.shared()
        let kubeconfig = """
            current-context: remote
            clusters: [{name: paris, cluster: {server: 'https://10.0.0.1:6443', certificate-authority-data: \(try pki.base64(pki.ca))}}]
            users: [{name: mirror, user: {token: abc.def}}]
            contexts: [{name: remote, context: {cluster: paris, user: mirror}}]
            """
        let json = """
            {"apiVersion": "v1", "kind": "Secret", "type": "mirror.linkerd.io/remote-kubeconfig",
             "metadata": {"name": "cluster-credentials-paris", "namespace": "linkerd-multicluster", "resourceVersion": "7"},
             "data": {"kubeconfig": "\(Data(kubeconfig.utf8).base64EncodedString())"}}
            """
        let secret = try JSONDecoder().decode(KubeSecret.self, from: Data(json.utf8))
        let connection = try secret.kubeconfig().connection()
        #expect(connection.server.absoluteString == "https://10.0.0.1:6443")
        #expect(try connection.token?.current() == "abc.def")

        var empty = secret
        empty.data = ["other": Data()]
        let error = #expect(throws: KubeConfigError.self) { try empty.kubeconfig() }
        #expect(error?.description == #"kubeconfig in Secret linkerd-multicluster/cluster-credentials-paris: data: has no key "kubeconfig""#)

        var broken = secret
        broken.data = ["kubeconfig": Data("users: [{name: m, user: {client-key-data: '%'}}]".utf8)]
        let parseError = #expect(throws: KubeConfigError.self) { try broken.kubeconfig() }
        #expect(parseError?.description ==
                #"kubeconfig in Secret linkerd-multicluster/cluster-credentials-paris: users[0] "m": client-key-data is not valid base64"#)
    }

    /// The pod's service account: env for the address, files for token, CA and namespace; the
    /// token file is re-read when it is replaced (bound tokens rotate).
    @Test func inClusterConfigReadsTheServiceAccountAndFollowsItsToken() throws {
        let pki = try TestPKI.shared()
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "first\n".write(toFile: directory + "/token", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: pki.ca, toPath: directory + "/ca.crt")
        try "mirror".write(toFile: directory + "/namespace", atomically: true, encoding: .utf8)
        let environment = ["KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"]

        let connection = try KubeConnection.inCluster(environment: environment, directory: directory)
        #expect(connection.server.absoluteString == "https://[fd00::1]:443")
        #expect(connection.namespace == "mirror")
        #expect(connection.trustRoots?.count == 1)
        #expect(try connection.token?.current() == "first")

        // The kubelet swaps the file (a new inode); a half-way failed read keeps the last token.
        try "second".write(toFile: directory + "/token.new", atomically: false, encoding: .utf8)
        #expect(rename(directory + "/token.new", directory + "/token") == 0)
        #expect(try connection.token?.current() == "second")
        try FileManager.default.removeItem(atPath: directory + "/token")
        #expect(try connection.token?.current() == "second")

        let missing = #expect(throws: KubeConfigError.self) { try KubeConnection.inCluster(environment: [:], directory: directory) }
        #expect(missing?.description == "in-cluster config: KUBERNETES_SERVICE_HOST is not set (not running in a pod?)")
        let noToken = #expect(throws: KubeConfigError.self) {
            try KubeConnection.inCluster(environment: environment, directory: directory + "/nothing")
        }
        #expect(noToken?.description.hasPrefix("in-cluster config: cannot read token file \(directory)/nothing/token") == true)
    }

    @Test func plainHTTPServersAreForTestsOnly() throws {
        let connection = KubeConnection(server: URL(fileURLWithPath: "/").deletingLastPathComponent(), origin: "kubeconfig k")
        var http = connection
        http.server = URL(string: "http://127.0.0.1:8080") ?? http.server
        let error = #expect(throws: KubeConfigError.self) { try KubeClient(connection: http) }
        #expect(error?.description == "kubeconfig k: server http://127.0.0.1:8080: only https is allowed (plain http is for test servers)")
        var options = KubeClientOptions()
        options.allowPlainHTTP = true
        let client = try KubeClient(connection: http, options: options)
        try client.http.syncShutdown()
    }
}
