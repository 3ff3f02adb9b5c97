import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a command to completion and returns its standard output (stderr appended).
@discardableResult
func runCommand(_ arguments: [String], timeout: TimeInterval = 20) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let outputURL = FileManager.default.temporaryDirectory.appendingPathComponent("cmd-\(UUID().uuidString).out")
    _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: outputURL) }
    let handle = try FileHandle(forWritingTo: outputURL)
    defer { try? handle.close() }
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning, Date() < deadline { usleep(5_000) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    let data = (try? Data(contentsOf: outputURL)) ?? Data()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// A UDP+TCP port number free right now on 127.0.0.1 (the kernel's pick for port 0).
func freePort() -> Int {
    for _ in 0..<50 {
        let udp = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        let tcp = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(udp); close(tcp) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(udp, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { continue }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(udp, $0, &length) }
        }
        let tcpBound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(tcp, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if tcpBound == 0 { return Int(UInt16(bigEndian: address.sin_port)) }
    }
    return 0
}

/// A real unbound serving `localData` on 127.0.0.1:`port`, for as long as the value lives
/// (call ``stop()``).
final class UnboundServer: @unchecked Sendable {
    let port: Int
    private let process: Process
    private let directory: URL

    init(localData: [String], port: Int = freePort()) throws {
        self.port = port
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("unbound-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var config = """
            server:
              interface: 127.0.0.1
              port: \(port)
              do-daemonize: no
              use-syslog: no
              username: ""
              chroot: ""
              directory: "\(directory.path)"
              pidfile: ""
              do-not-query-localhost: no
              access-control: 127.0.0.0/8 allow
              num-threads: 1
              # Without it unbound's sockets carry SO_REUSEPORT, and a responder under test
              # binding port 0 could be handed unbound's port and share it (queries then
              # land on either, and the responder can forward to itself).
              so-reuseport: no
              local-zone: "example.test." static

            """
        for line in localData { config += "  local-data: \"\(line.replacingOccurrences(of: "\"", with: "\\\""))\"\n" }
        let configURL = directory.appendingPathComponent("unbound.conf")
        try config.write(to: configURL, atomically: true, encoding: .utf8)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/unbound")
        process.arguments = ["-d", "-c", configURL.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Ready when it answers.
        for _ in 0..<100 {
            let probe = try runCommand(["dig", "@127.0.0.1", "-p", "\(port)", "+time=1", "+tries=1", "+short", "ready.example.test"])
            if probe.status == 0, !probe.output.contains("timed out") { return }
            usleep(50_000)
        }
        stop()
        throw TestSetupError("unbound did not start on port \(port)")
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }
}

struct TestSetupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs dig and returns its full output.
func dig(_ arguments: [String], port: Int, server: String = "127.0.0.1") throws -> String {
    try runCommand(["dig", "@\(server)", "-p", "\(port)", "+time=3", "+tries=1"] + arguments).output
}

/// The `status:` of a dig output (`NOERROR`, `NXDOMAIN`, …).
func digStatus(_ output: String) -> String? {
    guard let range = output.range(of: "status: ") else { return nil }
    return String(output[range.upperBound...].prefix { $0 != "," })
}

/// The flags line of a dig output, e.g. `qr aa rd ra`.
func digFlags(_ output: String) -> [String] {
    guard let range = output.range(of: ";; flags: ") else { return [] }
    return output[range.upperBound...].prefix { $0 != ";" }.split(separator: " ").map(String.init)
}
