import Foundation
import Netlink
#if canImport(Glibc)
import Glibc
#endif

/// A network namespace created for one test and deleted afterwards.
///
/// Netlink work happens on a thread that joined the namespace with `setns()`; sockets opened
/// there stay in the namespace whichever thread uses them later.
final class TestNamespace: @unchecked Sendable {
    let name: String

    static var isRoot: Bool { geteuid() == 0 }

    init(_ label: String) throws {
        name = "nftt-\(label)-\(getpid())-\(UInt32.random(in: 0 ... 0xffff))"
        try Shell.run(["ip", "netns", "add", name])
        try Shell.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"])
    }

    deinit { _ = try? Shell.run(["ip", "netns", "del", name]) }

    /// Runs `body` on a fresh thread inside the namespace and returns its result.
    func run<T>(_ body: @escaping () throws -> T) throws -> T {
        let box = ResultBox<T>(body)
        let path = "/var/run/netns/\(name)"
        let thread = Thread {
            box.result = Result {
                try NetworkNamespace.enter(path: path)
                return try box.body()
            }
            box.done.signal()
        }
        thread.start()
        box.done.wait()
        return try box.result!.get()
    }

    /// Runs a command inside the namespace (`ip netns exec`).
    @discardableResult
    func exec(_ arguments: [String], allowFailure: Bool = false) throws -> String {
        try Shell.run(["ip", "netns", "exec", name] + arguments, allowFailure: allowFailure)
    }
}

private final class ResultBox<T>: @unchecked Sendable {
    let body: () throws -> T
    var result: Result<T, Error>?
    init(_ body: @escaping () throws -> T) { self.body = body }
    let done = DispatchSemaphore(value: 0)
}

struct ShellError: Error, CustomStringConvertible {
    var command: String
    var status: Int32
    var output: String
    var description: String { "`\(command)` exited with \(status): \(output)" }
}

enum Shell {
    /// Runs a command, returning stdout; throws on non-zero exit unless `allowFailure`.
    ///
    /// Output goes through temporary files, not pipes: a daemon the command leaves behind
    /// (a test server) inherits every descriptor, and would keep a pipe open forever.
    @discardableResult
    static func run(_ arguments: [String], allowFailure: Bool = false, input: String? = nil) throws -> String {
        let directory = FileManager.default.temporaryDirectory
        let token = UUID().uuidString
        let outURL = directory.appendingPathComponent("nftt-\(token).out")
        let errURL = directory.appendingPathComponent("nftt-\(token).err")
        let inURL = directory.appendingPathComponent("nftt-\(token).in")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: inURL.path, contents: Data((input ?? "").utf8))
        defer {
            for url in [outURL, errURL, inURL] { try? FileManager.default.removeItem(at: url) }
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardInput = try FileHandle(forReadingFrom: inURL)
        try process.run()
        process.waitUntilExit()
        let text = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        if process.terminationStatus != 0 && !allowFailure {
            let errors = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
            throw ShellError(command: arguments.joined(separator: " "), status: process.terminationStatus, output: text + errors)
        }
        return text
    }
}

/// Lets a non-Sendable backend cross to the test's thread (it is used by one thread at a time).
final class Unchecked<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
