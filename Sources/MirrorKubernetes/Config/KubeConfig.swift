import Foundation

/// A parsed kubeconfig: clusters, users and contexts, as kubectl reads them.
///
/// Parsing checks every field's type and decodes every `*-data` field, so a bad file fails
/// at once with every problem named; files that fields point to are read, and PEM parsed,
/// when a context is turned into a ``KubeConnection``.
public struct KubeConfig: Sendable {
    public struct Cluster: Sendable {
        public var name: String
        /// `clusters[0] "paris"`, for error messages.
        public var label: String
        public var server: String
        /// A path, already made absolute against the kubeconfig's directory.
        public var certificateAuthority: String?
        public var certificateAuthorityData: Data?
        public var insecureSkipTLSVerify: Bool
        public var tlsServerName: String?
        public var proxyURL: String?
    }

    public struct User: Sendable {
        public var name: String
        public var label: String
        public var token: String?
        public var tokenFile: String?
        public var clientCertificate: String?
        public var clientCertificateData: Data?
        public var clientKey: String?
        public var clientKeyData: Data?
        /// Authentication methods this client does not implement, by field name.
        public var unsupported: [String]
    }

    public struct Context: Sendable {
        public var name: String
        public var label: String
        public var cluster: String
        public var user: String?
        public var namespace: String?
    }

    /// `kubeconfig /path` or `kubeconfig in Secret ns/name`: the start of every error.
    public var source: String
    public var clusters: [Cluster]
    public var users: [User]
    public var contexts: [Context]
    public var currentContext: String?

    /// Reads a kubeconfig file; relative paths inside it are resolved against its directory.
    public static func load(path: String) throws -> KubeConfig {
        let source = "kubeconfig \(path)"
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw KubeConfigError(source: source, issues: ["cannot read: \(KubeConfigError.reason(error))"])
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return try parse(text, source: source, directory: directory)
    }

    /// The file kubectl would use: the first of `$KUBECONFIG`, else `~/.kube/config`.
    /// (kubectl merges every file of `$KUBECONFIG`; this reads the first one only.)
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let list = environment["KUBECONFIG"], let first = list.split(separator: ":").first, !first.isEmpty {
            return String(first)
        }
        return (environment["HOME"] ?? NSHomeDirectory()) + "/.kube/config"
    }

    /// The connection for `context`, or for `current-context` when nil (kubectl's `--context`).
    public func connection(context name: String? = nil) throws -> KubeConnection {
        let contextName = name ?? currentContext
        guard let contextName, !contextName.isEmpty else {
            throw KubeConfigError(source: source, issues: ["current-context is not set and no context was given"])
        }
        guard let context = contexts.first(where: { $0.name == contextName }) else {
            let known = contexts.map(\.name).joined(separator: ", ")
            throw KubeConfigError(source: source, issues: ["context \"\(contextName)\" not found (contexts: \(known.isEmpty ? "none" : known))"])
        }
        guard let cluster = clusters.first(where: { $0.name == context.cluster }) else {
            throw KubeConfigError(source: source, issues: ["\(context.label): cluster \"\(context.cluster)\" not found"])
        }
        var user: User?
        if let userName = context.user, !userName.isEmpty {
            guard let found = users.first(where: { $0.name == userName }) else {
                throw KubeConfigError(source: source, issues: ["\(context.label): user \"\(userName)\" not found"])
            }
            user = found
        }
        return try KubeConnectionBuilder(source: source, description: "\(source) context \"\(contextName)\"")
            .build(cluster: cluster, user: user, namespace: context.namespace)
    }
}

/// Why a kubeconfig (or the in-cluster configuration) cannot be used, every problem named
/// with its source and field.
public struct KubeConfigError: Error, CustomStringConvertible, Equatable {
    public var source: String
    public var issues: [String]

    public init(source: String, issues: [String]) {
        self.source = source
        self.issues = issues
    }

    public var description: String { issues.map { "\(source): \($0)" }.joined(separator: "\n") }

    static func reason(_ error: any Error) -> String {
        if let cocoa = error as? CocoaError, let underlying = cocoa.userInfo[NSUnderlyingErrorKey] as? POSIXError {
            return String(cString: strerror(underlying.code.rawValue))
        }
        if let cocoa = error as? CocoaError {
            switch cocoa.code {
            case .fileReadNoSuchFile: return "no such file"
            case .fileReadNoPermission: return "permission denied"
            default: break
            }
        }
        return "\(error)"
    }
}
