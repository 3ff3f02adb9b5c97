import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOSSL
import Prometheus
import MirrorModel

/// One side's TLS material that follows its files: certificate, key and CA bundle are read
/// again when they change (an edit, a rename over the file, Kubernetes' `..data` symlink swap
/// of a Secret volume), and every new handshake uses the newest material that loaded.
/// Established connections keep the context they started with, so a rotation cuts nothing.
///
/// Half-written or mismatched material (unparsable PEM, a key that does not match the
/// certificate) is refused with a log line naming the file, and the previous material stays.
public final class TLSReloader: Sendable {
    public enum Side: String, Sendable {
        case server, client
    }

    /// The expiry of one certificate file (for a bundle, its earliest certificate's).
    public struct Expiry: Sendable, Equatable {
        public var file: String
        /// `certificate` or `ca`.
        public var kind: String
        public var notAfter: Date
    }

    /// What a reload did.
    public enum Outcome: Sendable, Equatable {
        case unchanged
        case reloaded
        case refused(String)
    }

    public let files: FeedTLSFiles
    public let side: Side
    private let logger: Logger
    private struct Material {
        var context: NIOSSLContext
        var bytes: [Data?]
        var expiries: [Expiry]
    }
    private let material: NIOLockedValueBox<Material>

    /// Loads the files once; unusable files at start are an error (nothing to fall back to).
    public init(files: FeedTLSFiles, side: Side, logger: Logger) throws {
        self.files = files
        self.side = side
        self.logger = logger
        let bytes = Self.read(files)
        material = NIOLockedValueBox(Material(context: try Self.context(files, side: side), bytes: bytes, expiries: Self.expiries(files)))
    }

    /// The context for the next handshake.
    public var context: NIOSSLContext { material.withLockedValue { $0.context } }

    /// When the certificate and the CA bundle in force expire.
    public var expiries: [Expiry] { material.withLockedValue { $0.expiries } }

    /// Reads the files again and, if their bytes changed, switches to them when they load.
    @discardableResult
    public func reload() -> Outcome {
        let bytes = Self.read(files)
        guard bytes != material.withLockedValue({ $0.bytes }) else { return .unchanged }
        do {
            let context = try Self.context(files, side: side)
            let expiries = Self.expiries(files)
            material.withLockedValue { $0 = Material(context: context, bytes: bytes, expiries: expiries) }
            logger.notice("TLS files changed: new handshakes use them", metadata: [
                "side": "\(side.rawValue)", "certificate": "\(files.certificate)", "ca": "\(files.ca)",
                "expires": "\(expiries.map { "\($0.file) \(ISO8601DateFormatter().string(from: $0.notAfter))" }.joined(separator: ", "))",
            ])
            return .reloaded
        } catch {
            // Remember the refused bytes, so one bad write is logged once, not every tick.
            material.withLockedValue { $0.bytes = bytes }
            logger.error("TLS files changed but cannot be used; the previous certificate, key and CA stay in force",
                         metadata: ["side": "\(side.rawValue)", "error": "\(error)"])
            return .refused("\(error)")
        }
    }

    /// Follows the files until cancelled: an inotify watch on each file's directory (so a
    /// Secret's symlink swap is seen at once) and a re-check every `interval` as a backstop.
    public func watch(interval: Duration = .seconds(2)) async {
        await DirectoryWatcher.withWakeups(forFilesAt: [files.certificate, files.key, files.ca], pollInterval: interval) { wakeups, _ in
            for await _ in wakeups {
                if Task.isCancelled { break }
                // A writer may still be busy with the second file of a pair: let it finish.
                try? await Task.sleep(for: .milliseconds(100))
                reload()
            }
        }
    }

    private static func read(_ files: FeedTLSFiles) -> [Data?] {
        [files.certificate, files.key, files.ca].map { FileManager.default.contents(atPath: $0) }
    }

    private static func context(_ files: FeedTLSFiles, side: Side) throws -> NIOSSLContext {
        switch side {
        case .server: try files.makeServerContext()
        case .client: try files.makeClientContext()
        }
    }

    private static func expiries(_ files: FeedTLSFiles) -> [Expiry] {
        [(files.certificate, "certificate"), (files.ca, "ca")].compactMap { file, kind in
            guard let certificates = try? NIOSSLCertificate.fromPEMFile(file),
                  let earliest = certificates.map(\.notValidAfter).min() else { return nil }
            return Expiry(file: file, kind: kind, notAfter: Date(timeIntervalSince1970: TimeInterval(earliest)))
        }
    }
}

extension TLSReloader.Expiry {
    /// `mirror_agent_tls_certificate_expiry_seconds{role,file}`: when each certificate file in
    /// force expires, as Unix time (alert on `metric - time() < 7 * 86400`). The same series
    /// name in the feed's, the agent's and the gateway's `/metrics`, told apart by `role`.
    public static func record(_ expiries: [TLSReloader.Expiry], role: String, into registry: PrometheusCollectorRegistry) {
        let descriptor = MetricNameDescriptor(namespace: "mirror_agent", metricName: "tls_certificate_expiry", unitName: "seconds",
                                              helpText: "When the TLS certificate (or the earliest certificate of the CA bundle) in force expires, as Unix time.")
        for expiry in expiries {
            registry.makeGauge(descriptor: descriptor, labels: [("role", role), ("file", expiry.file)]).set(to: expiry.notAfter.timeIntervalSince1970)
        }
    }

    /// Seconds until expiry (negative once expired).
    public var remaining: TimeInterval { notAfter.timeIntervalSinceNow }
}
