import Foundation
import NIOConcurrencyHelpers

/// A CA, a server certificate for 127.0.0.1, a client certificate, and a second CA that
/// signed nothing here, made with openssl once per test process.
struct TestPKI: Sendable {
    let directory: String
    var ca: String { directory + "/ca.pem" }
    var serverCert: String { directory + "/server.pem" }
    var serverKey: String { directory + "/server.key" }
    var clientCert: String { directory + "/client.pem" }
    var clientKey: String { directory + "/client.key" }
    var otherCA: String { directory + "/other-ca.pem" }

    func base64(_ path: String) throws -> String { try Data(contentsOf: URL(fileURLWithPath: path)).base64EncodedString() }

    private static let made = NIOLockedValueBox<Result<TestPKI, HarnessError>?>(nil)

    static func shared() throws -> TestPKI {
        try made.withLockedValue { made in
            let result = made ?? Result { try TestPKI.make() }.mapError { HarnessError("\($0)") }
            made = result
            return try result.get()
        }
    }

    private static func make() throws -> TestPKI {
        let directory = try Fixtures.temporaryDirectory()
        let script = """
            set -e
            cd '\(directory)'
            key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
            ca() { key "$1"; openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 2 -subj "/CN=$1" \
                     -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null; }
            signed() { key "$1"; openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
                       printf '%s\\n' "$2" > "$1.ext"
                       openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" -days 2 \
                         -extfile "$1.ext" 2>/dev/null; }
            ca ca
            ca other-ca
            signed server 'subjectAltName=IP:127.0.0.1,DNS:localhost
            extendedKeyUsage=serverAuth'
            signed client 'extendedKeyUsage=clientAuth'
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw HarnessError("openssl failed: \(text)")
        }
        return TestPKI(directory: directory)
    }
}
