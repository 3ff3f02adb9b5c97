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
    @discardableResult
    static func run(_ arguments: [String], allowFailure: Bool = false, input: String? = nil) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        if let input {
            let pipe = Pipe()
            process.standardInput = pipe
            try process.run()
            pipe.fileHandleForWriting.write(Data(input.utf8))
            try pipe.fileHandleForWriting.close()
        } else {
            try process.run()
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let errorData = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        if process.terminationStatus != 0 && !allowFailure {
            throw ShellError(command: arguments.joined(separator: " "), status: process.terminationStatus,
                             output: text + String(decoding: errorData, as: UTF8.self))
        }
        return text
    }
}

/// Lets a non-Sendable backend cross to the test's thread (it is used by one thread at a time).
final class Unchecked<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
