import Foundation
import Testing

/// `mirror-agent check --certificate FILE`, run as an operator would (the built binary), on
/// certificates made with openssl: one line per certificate, `!` "rotate it now" within 7 days
/// (exit 0), `×` "EXPIRED" once expired (exit 1), `√` otherwise. Without --state, `check` also
/// runs the node checks (capabilities, nf_tables), which pass as root; the tests look at the
/// certificate lines and the exit status.
@Suite struct CertificateCheckTests {
    @Test func aCertificateValidForThreeDaysWarnsToRotate() throws {
        let pki = try CheckCertificates.shared()
        let result = try AgentProcess.run(["check", "--certificate", pki.soon])
        let lines = CheckCertificates.certificateLines(result.stdout)
        #expect(lines.count == 1, "\(result.stdout)")
        let line = try #require(lines.first)
        #expect(line.hasPrefix("! certificate "), "\(line)")
        #expect(line.contains("rotate it now"), "\(line)")
        #expect(line.contains("expires in 2 days") || line.contains("expires in 3 days"), "\(line)")
        #expect(!line.contains("EXPIRED"))
        // A warning, not a failure.
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("checks passed"), "\(result.stdout)")
    }

    @Test func anExpiredCertificateFails() throws {
        let pki = try CheckCertificates.shared()
        let result = try AgentProcess.run(["check", "--certificate", pki.expired])
        let lines = CheckCertificates.certificateLines(result.stdout)
        #expect(lines.count == 1, "\(result.stdout)")
        let line = try #require(lines.first)
        #expect(line.hasPrefix("× certificate "), "\(line)")
        #expect(line.contains("EXPIRED on 2025-02-01T00:00:00Z"), "\(line)")
        #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("1 of "), "\(result.stdout)")
    }

    /// 90 days, and 8 (just past the 7-day warning).
    @Test(arguments: [(90, "expires in 89 days"), (8, "expires in 7 days")])
    func aValidCertificatePasses(days: Int, detail: String) throws {
        let pki = try CheckCertificates.shared()
        let result = try AgentProcess.run(["check", "--certificate", pki.valid(days: days)])
        let lines = CheckCertificates.certificateLines(result.stdout)
        #expect(lines.count == 1, "\(result.stdout)")
        let line = try #require(lines.first)
        #expect(line.hasPrefix("√ certificate "), "\(line)")
        #expect(line.contains(detail), "\(line)")
        #expect(!line.contains("rotate it now"), "\(line)")
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
    }

    /// A CA bundle gets one line per certificate, in file order; one expired fails the check.
    @Test func aBundleGetsOneLinePerCertificate() throws {
        let pki = try CheckCertificates.shared()
        let result = try AgentProcess.run(["check", "--certificate", pki.bundle, "--certificate", pki.soon])
        let lines = CheckCertificates.certificateLines(result.stdout)
        #expect(lines.count == 3, "\(result.stdout)")
        guard lines.count == 3 else { return }
        #expect(lines[0].hasPrefix("√ certificate "), "\(lines[0])")
        #expect(lines[1].hasPrefix("× certificate "), "\(lines[1])")
        #expect(lines[1].contains("EXPIRED"), "\(lines[1])")
        #expect(lines[2].hasPrefix("! certificate "), "\(lines[2])")
        #expect(result.status == 1)
    }

    @Test func aFileThatIsNotPEMFails() throws {
        let pki = try CheckCertificates.shared()
        let result = try AgentProcess.run(["check", "--certificate", pki.notPEM])
        let line = try #require(CheckCertificates.certificateLines(result.stdout).first, "\(result.stdout)")
        #expect(line.hasPrefix("× certificate "), "\(line)")
        #expect(line.contains("cannot read it as PEM"), "\(line)")
        #expect(result.status == 1)
    }

    /// Each line must say which file it is about: with the README's own example
    /// (`--certificate /etc/mirror/tls/tls.crt --certificate /etc/mirror/tls/ca.crt`) an
    /// operator has to tell the two lines apart.
    @Test func eachLineNamesItsWholeFile() throws {
        let pki = try CheckCertificates.shared()
        let result = try AgentProcess.run(["check", "--certificate", pki.soon, "--certificate", pki.expired])
        let lines = CheckCertificates.certificateLines(result.stdout)
        #expect(lines.count == 2, "\(result.stdout)")
        #expect(lines.first?.contains(pki.soon) == true, "\(lines)")
        #expect(lines.last?.contains(pki.expired) == true, "\(lines)")
    }
}

/// Certificates made once per test process with openssl: valid for 3 days, for `N` days, an
/// expired one (`openssl ca -startdate/-enddate`: `x509 -days` cannot go negative and this
/// OpenSSL 3.0 has no `-not_after`), a bundle of a valid and the expired one, and a non-PEM file.
struct CheckCertificates: Sendable {
    let directory: String
    var soon: String { directory + "/soon.pem" }
    var expired: String { directory + "/expired.pem" }
    var bundle: String { directory + "/bundle.pem" }
    var notPEM: String { directory + "/not-pem.crt" }
    func valid(days: Int) -> String { directory + "/valid-\(days).pem" }

    private static let made: Result<CheckCertificates, CheckCertificatesError> = Result { try make() }.mapError { CheckCertificatesError(description: "\($0)") }

    static func shared() throws -> CheckCertificates { try made.get() }

    /// The lines of `check`'s output about certificates.
    static func certificateLines(_ stdout: String) -> [String] {
        stdout.split(separator: "\n").map(String.init).filter { $0.dropFirst(2).hasPrefix("certificate ") }
    }

    private static func make() throws -> CheckCertificates {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("check-certs-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let script = """
            set -e
            cd '\(directory)'
            selfsigned() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.pem" -days "$2" -subj "/CN=$1" 2>/dev/null; }
            selfsigned ca 365
            selfsigned soon 3
            selfsigned valid-90 90
            selfsigned valid-8 8
            cat > ca.cnf <<'EOF'
            [ ca ]
            default_ca = test
            [ test ]
            database = index.txt
            new_certs_dir = .
            serial = serial
            default_md = sha256
            policy = anything
            unique_subject = no
            [ anything ]
            commonName = supplied
            EOF
            : > index.txt
            echo 01 > serial
            openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout expired.key -out expired.csr -subj /CN=expired 2>/dev/null
            openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr -out expired.pem \
                -startdate 20250101000000Z -enddate 20250201000000Z -notext 2>/dev/null
            cat valid-90.pem expired.pem > bundle.pem
            echo 'not a certificate' > not-pem.crt
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let message = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CheckCertificatesError(description: "openssl failed: \(String(decoding: message, as: UTF8.self))")
        }
        return CheckCertificates(directory: directory)
    }
}

struct CheckCertificatesError: Error, CustomStringConvertible {
    var description: String
}
