import Foundation
import NIOSSL

/// Everything needed to reach one API server: its URL, whom to trust, who to be.
///
/// Built from a kubeconfig context or from the pod's service account; certificates and keys
/// are parsed when it is built, so a bad one is reported with its field before any request.
public struct KubeConnection: Sendable {
    public var server: URL
    /// The context's namespace (or the service account's), for callers that need a default.
    public var namespace: String?
    /// Roots for the server's certificate; nil means the system's.
    public var trustRoots: [NIOSSLCertificate]?
    public var insecureSkipTLSVerify: Bool
    public var clientCertificateChain: [NIOSSLCertificate]
    public var clientKey: NIOSSLPrivateKey?
    public var token: BearerToken?
    /// Where it came from (`kubeconfig /path context "x"`, `in-cluster config`), for logs and errors.
    public var origin: String

    public init(server: URL, namespace: String? = nil, trustRoots: [NIOSSLCertificate]? = nil,
                insecureSkipTLSVerify: Bool = false, clientCertificateChain: [NIOSSLCertificate] = [],
                clientKey: NIOSSLPrivateKey? = nil, token: BearerToken? = nil, origin: String) {
        self.server = server
        self.namespace = namespace
        self.trustRoots = trustRoots
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.clientCertificateChain = clientCertificateChain
        self.clientKey = clientKey
        self.token = token
        self.origin = origin
    }

    /// The default service account directory of a pod.
    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// The pod's own API access: `KUBERNETES_SERVICE_HOST`/`_PORT`, and the service account's
    /// token (re-read when its file changes: bound tokens rotate), CA and namespace.
    public static func inCluster(environment: [String: String] = ProcessInfo.processInfo.environment,
                                 directory: String = serviceAccountDirectory) throws -> KubeConnection {
        let source = "in-cluster config"
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else {
            throw KubeConfigError(source: source, issues: ["KUBERNETES_SERVICE_HOST is not set (not running in a pod?)"])
        }
        guard let portText = environment["KUBERNETES_SERVICE_PORT"], let port = Int(portText), (1...65535).contains(port) else {
            throw KubeConfigError(source: source, issues: ["KUBERNETES_SERVICE_PORT is not set or not a port"])
        }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        guard let server = URL(string: "https://\(hostPart):\(port)") else {
            throw KubeConfigError(source: source, issues: ["KUBERNETES_SERVICE_HOST \"\(host)\" is not a host"])
        }
        let builder = KubeConnectionBuilder(source: source, description: source)
        let token = BearerToken(file: directory + "/token")
        do {
            _ = try token.current()
        } catch {
            throw KubeConfigError(source: source, issues: ["\(error)"])
        }
        let roots = try builder.certificates(file: directory + "/ca.crt", data: nil, field: "ca.crt")
        let namespace = (try? String(contentsOfFile: directory + "/namespace", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return KubeConnection(server: server, namespace: namespace, trustRoots: roots, token: token, origin: source)
    }
}

/// Turns a kubeconfig's cluster and user into a ``KubeConnection``, naming the field of
/// every problem.
struct KubeConnectionBuilder {
    let source: String
    let description: String

    func build(cluster: KubeConfig.Cluster, user: KubeConfig.User?, namespace: String?) throws -> KubeConnection {
        guard let server = URL(string: cluster.server.hasSuffix("/") ? String(cluster.server.dropLast()) : cluster.server) else {
            throw fail("\(cluster.label): server \"\(cluster.server)\" is not a URL")
        }
        if cluster.proxyURL != nil { throw fail("\(cluster.label): proxy-url is not supported") }
        if cluster.tlsServerName != nil { throw fail("\(cluster.label): tls-server-name is not supported") }
        var roots: [NIOSSLCertificate]?
        if cluster.certificateAuthorityData != nil || cluster.certificateAuthority != nil {
            if cluster.insecureSkipTLSVerify {
                throw fail("\(cluster.label): insecure-skip-tls-verify cannot be used with a certificate authority")
            }
            let field = cluster.certificateAuthorityData != nil ? "certificate-authority-data" : "certificate-authority"
            roots = try certificates(file: cluster.certificateAuthority, data: cluster.certificateAuthorityData,
                                     field: "\(cluster.label): \(field)")
        }
        var connection = KubeConnection(server: server, namespace: namespace, trustRoots: roots,
                                        insecureSkipTLSVerify: cluster.insecureSkipTLSVerify, origin: description)
        guard let user else { return connection }
        if let method = user.unsupported.first {
            throw fail("\(user.label): \(method) is not supported (use token, tokenFile or a client certificate)")
        }
        if let token = user.token, !token.isEmpty {
            connection.token = BearerToken(fixed: token)
        } else if let file = user.tokenFile {
            let token = BearerToken(file: file)
            do {
                _ = try token.current()
            } catch {
                throw fail("\(user.label): tokenFile: \(error)")
            }
            connection.token = token
        }
        let hasCertificate = user.clientCertificateData != nil || user.clientCertificate != nil
        let hasKey = user.clientKeyData != nil || user.clientKey != nil
        if hasCertificate != hasKey {
            throw fail("\(user.label): " + (hasCertificate ? "client-certificate needs client-key (or client-key-data)"
                                                           : "client-key needs client-certificate (or client-certificate-data)"))
        }
        if hasCertificate {
            let certificateField = user.clientCertificateData != nil ? "client-certificate-data" : "client-certificate"
            connection.clientCertificateChain = try certificates(file: user.clientCertificate, data: user.clientCertificateData,
                                                                 field: "\(user.label): \(certificateField)")
            let keyField = user.clientKeyData != nil ? "client-key-data" : "client-key"
            let keyBytes = try bytes(file: user.clientKey, data: user.clientKeyData, field: "\(user.label): \(keyField)")
            do {
                connection.clientKey = try NIOSSLPrivateKey(bytes: keyBytes, format: .pem)
            } catch {
                throw fail("\(user.label): \(keyField) is not a PEM private key")
            }
        }
        return connection
    }

    func certificates(file: String?, data: Data?, field: String) throws -> [NIOSSLCertificate] {
        let pem = try bytes(file: file, data: data, field: field)
        let certificates = try? NIOSSLCertificate.fromPEMBytes(pem)
        guard let certificates, !certificates.isEmpty else { throw fail("\(field) holds no PEM certificate") }
        return certificates
    }

    /// `data` wins over `file`, as in kubectl.
    private func bytes(file: String?, data: Data?, field: String) throws -> [UInt8] {
        if let data { return Array(data) }
        guard let file else { throw fail("\(field) is empty") }
        do {
            return Array(try Data(contentsOf: URL(fileURLWithPath: file)))
        } catch {
            throw fail("\(field): cannot read \(file): \(KubeConfigError.reason(error))")
        }
    }

    private func fail(_ issue: String) -> KubeConfigError { KubeConfigError(source: source, issues: [issue]) }
}
