import NIOSSL
import MirrorModel

/// Files that make up one side's TLS identity and trust.
///
/// Both sides present a certificate and verify the other's against a CA bundle: the server
/// accepts only clients whose certificate chains to `ca` (mutual TLS), and the client accepts
/// only a server whose certificate chains to `ca` and names the host it dialled.
public struct FeedTLSFiles: Sendable, Equatable {
    /// PEM certificate (chain) presented to the peer.
    public var certificate: String
    /// PEM private key of `certificate`.
    public var key: String
    /// PEM bundle of the CA(s) the peer's certificate must chain to.
    public var ca: String

    public init(certificate: String, key: String, ca: String) {
        self.certificate = certificate
        self.key = key
        self.ca = ca
    }

    /// The server side: presents `certificate`, requires a client certificate from `ca`.
    public func makeServerContext() throws -> NIOSSLContext {
        let (chain, privateKey) = try loadIdentity()
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        configuration.trustRoots = .certificates(try loadCA())
        // Client certificates are checked against the CA; clients have no hostname to match.
        configuration.certificateVerification = .noHostnameVerification
        configuration.minimumTLSVersion = .tlsv12
        configuration.shutdownTimeout = .seconds(1)
        return try context(configuration, role: "server")
    }

    /// The client side: presents `certificate`, verifies the server against `ca` and its name.
    public func makeClientContext() throws -> NIOSSLContext {
        let (chain, privateKey) = try loadIdentity()
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateChain = chain.map { .certificate($0) }
        configuration.privateKey = .privateKey(privateKey)
        configuration.trustRoots = .certificates(try loadCA())
        configuration.certificateVerification = .fullVerification
        configuration.minimumTLSVersion = .tlsv12
        // A dropped stream is abandoned: no point waiting long for the server's close_notify.
        configuration.shutdownTimeout = .milliseconds(200)
        return try context(configuration, role: "client")
    }

    private func loadIdentity() throws -> ([NIOSSLCertificate], NIOSSLPrivateKey) {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificate)
        } catch {
            throw FeedTLSError(file: certificate, role: "certificate", reason: "\(error)")
        }
        guard !chain.isEmpty else { throw FeedTLSError(file: certificate, role: "certificate", reason: "no PEM certificate in the file") }
        do {
            return (chain, try NIOSSLPrivateKey(file: key, format: .pem))
        } catch {
            throw FeedTLSError(file: key, role: "private key", reason: "\(error)")
        }
    }

    private func loadCA() throws -> [NIOSSLCertificate] {
        do {
            let roots = try NIOSSLCertificate.fromPEMFile(ca)
            guard !roots.isEmpty else { throw FeedTLSError(file: ca, role: "CA bundle", reason: "no PEM certificate in the file") }
            return roots
        } catch let error as FeedTLSError {
            throw error
        } catch {
            throw FeedTLSError(file: ca, role: "CA bundle", reason: "\(error)")
        }
    }

    private func context(_ configuration: TLSConfiguration, role: String) throws -> NIOSSLContext {
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw FeedTLSError(file: "\(certificate) + \(key)", role: "\(role) TLS identity", reason: "\(error) (does the key match the certificate?)")
        }
    }
}

/// A TLS file could not be used.
public struct FeedTLSError: Error, CustomStringConvertible {
    public var file: String
    /// What the file was meant to be: `certificate`, `private key`, `CA bundle`.
    public var role: String
    public var reason: String
    public var description: String { "cannot load TLS \(role) from \(file): \(reason); check the path and that it is PEM" }
}
