import Foundation
import Yams

extension KubeConfig {
    /// Parses kubeconfig text (a file's, or the `kubeconfig` key of a Link's credentials
    /// Secret). `source` starts every error; `directory` resolves relative file paths.
    public static func parse(_ text: String, source: String, directory: String? = nil) throws -> KubeConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw KubeConfigError(source: source, issues: ["invalid YAML: \(error)"])
        }
        guard let root, case .mapping(let top) = root else {
            throw KubeConfigError(source: source, issues: [root == nil ? "is empty" : "must be a map"])
        }
        var reader = KubeConfigReader(directory: directory)
        let config = reader.read(top, source: source)
        if !reader.issues.isEmpty { throw KubeConfigError(source: source, issues: reader.issues) }
        return config
    }
}

/// Walks the YAML tree, recording every problem with its place instead of stopping at the
/// first, so one run shows everything wrong with a file.
private struct KubeConfigReader {
    let directory: String?
    var issues: [String] = []

    mutating func read(_ top: Node.Mapping, source: String) -> KubeConfig {
        var config = KubeConfig(source: source, clusters: [], users: [], contexts: [], currentContext: nil)
        config.currentContext = string(top["current-context"], at: "current-context")
        config.clusters = entries(top["clusters"], list: "clusters", inner: "cluster") { reader, name, label, fields in
            reader.cluster(name: name, label: label, fields)
        }
        config.users = entries(top["users"], list: "users", inner: "user") { reader, name, label, fields in
            reader.user(name: name, label: label, fields)
        }
        config.contexts = entries(top["contexts"], list: "contexts", inner: "context") { reader, name, label, fields in
            reader.context(name: name, label: label, fields)
        }
        return config
    }

    /// A named list (`clusters`, `users`, `contexts`): each item is `{name, <inner>: {...}}`.
    mutating func entries<Entry>(_ node: Node?, list: String, inner: String,
                                 _ make: (inout KubeConfigReader, String, String, Node.Mapping) -> Entry?) -> [Entry] {
        guard let node, node.null == nil else { return [] }
        guard case .sequence(let items) = node else {
            issues.append("\(list): must be a list")
            return []
        }
        var result: [Entry] = []
        var seen: Set<String> = []
        for (index, item) in items.enumerated() {
            guard case .mapping(let pair) = item else {
                issues.append("\(list)[\(index)]: must be a map")
                continue
            }
            let name = string(pair["name"], at: "\(list)[\(index)]: name")
            let label = name.map { "\(list)[\(index)] \"\($0)\"" } ?? "\(list)[\(index)]"
            guard let name, !name.isEmpty else {
                issues.append("\(label): name is missing")
                continue
            }
            if !seen.insert(name).inserted { issues.append("\(label): the name is used twice") }
            guard case .mapping(let fields)? = pair[inner] else {
                issues.append("\(label): \(inner) must be a map")
                continue
            }
            if let entry = make(&self, name, label, fields) { result.append(entry) }
        }
        return result
    }

    mutating func cluster(name: String, label: String, _ fields: Node.Mapping) -> KubeConfig.Cluster? {
        let server = string(fields["server"], at: "\(label): server")
        if let server {
            let url = URL(string: server)
            if !["https", "http"].contains(url?.scheme ?? "") || url?.host == nil {
                issues.append("\(label): server \"\(server)\" is not an http(s) URL")
            }
        } else if fields["server"] == nil {
            issues.append("\(label): server is missing")
        }
        return KubeConfig.Cluster(
            name: name, label: label, server: server ?? "",
            certificateAuthority: path(fields["certificate-authority"], at: "\(label): certificate-authority"),
            certificateAuthorityData: base64(fields["certificate-authority-data"], at: "\(label): certificate-authority-data"),
            insecureSkipTLSVerify: bool(fields["insecure-skip-tls-verify"], at: "\(label): insecure-skip-tls-verify") ?? false,
            tlsServerName: string(fields["tls-server-name"], at: "\(label): tls-server-name"),
            proxyURL: string(fields["proxy-url"], at: "\(label): proxy-url"))
    }

    mutating func user(name: String, label: String, _ fields: Node.Mapping) -> KubeConfig.User? {
        // `tokenFile` is the documented spelling; `token-file` is accepted too.
        let tokenFileKey = fields["tokenFile"] != nil ? "tokenFile" : "token-file"
        let unsupported = ["exec", "auth-provider", "username", "password", "as", "as-user-extra", "as-groups"]
            .filter { fields[$0].map { $0.null == nil } ?? false }
        return KubeConfig.User(
            name: name, label: label,
            token: string(fields["token"], at: "\(label): token"),
            tokenFile: path(fields[tokenFileKey], at: "\(label): \(tokenFileKey)"),
            clientCertificate: path(fields["client-certificate"], at: "\(label): client-certificate"),
            clientCertificateData: base64(fields["client-certificate-data"], at: "\(label): client-certificate-data"),
            clientKey: path(fields["client-key"], at: "\(label): client-key"),
            clientKeyData: base64(fields["client-key-data"], at: "\(label): client-key-data"),
            unsupported: unsupported)
    }

    mutating func context(name: String, label: String, _ fields: Node.Mapping) -> KubeConfig.Context? {
        guard let cluster = string(fields["cluster"], at: "\(label): cluster"), !cluster.isEmpty else {
            if fields["cluster"].map({ $0.scalar != nil }) ?? true { issues.append("\(label): cluster is missing") }
            return nil
        }
        return KubeConfig.Context(name: name, label: label, cluster: cluster,
                                  user: string(fields["user"], at: "\(label): user"),
                                  namespace: string(fields["namespace"], at: "\(label): namespace"))
    }

    // Typed fields. `at` is `<object>: <field>`; a missing or null field is nil, not an error.

    mutating func string(_ node: Node?, at place: String) -> String? {
        guard let node, node.null == nil else { return nil }
        guard case .scalar(let scalar) = node else {
            issues.append("\(place) must be a string")
            return nil
        }
        return scalar.string
    }

    mutating func bool(_ node: Node?, at place: String) -> Bool? {
        guard let node, node.null == nil else { return nil }
        guard let value = node.bool else {
            issues.append("\(place) must be true or false")
            return nil
        }
        return value
    }

    mutating func path(_ node: Node?, at place: String) -> String? {
        guard let path = string(node, at: place), !path.isEmpty else { return nil }
        if path.hasPrefix("/") { return path }
        if path.hasPrefix("~/") { return NSHomeDirectory() + path.dropFirst(1) }
        guard let directory else { return path }
        return URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: directory, isDirectory: true)).standardized.path
    }

    mutating func base64(_ node: Node?, at place: String) -> Data? {
        guard let text = string(node, at: place) else { return nil }
        let compact = text.filter { !$0.isWhitespace }
        guard !compact.isEmpty, let data = Data(base64Encoded: compact) else {
            issues.append("\(place) is not valid base64")
            return nil
        }
        return data
    }
}
