import Foundation
import MirrorModel
import MirrorFeed
#if canImport(Glibc)
import Glibc
#endif

/// A bench failure, printed as is.
struct BenchError: Error, CustomStringConvertible {
    var description: String
}

/// The value after `--name`.
func argument(_ name: String, _ arguments: [String]) throws -> String {
    guard let index = arguments.firstIndex(of: "--\(name)"), index + 1 < arguments.count else {
        throw BenchError(description: "missing --\(name)")
    }
    return arguments[index + 1]
}

func intArgument(_ name: String, _ arguments: [String]) throws -> Int {
    guard let value = Int(try argument(name, arguments)) else { throw BenchError(description: "--\(name) must be an integer") }
    return value
}

/// `--tls-cert/--tls-key/--tls-ca` when given (all three or none).
func tlsArguments(_ arguments: [String]) throws -> FeedTLSFiles? {
    guard arguments.contains("--tls-cert") else { return nil }
    return FeedTLSFiles(certificate: try argument("tls-cert", arguments), key: try argument("tls-key", arguments),
                        ca: try argument("tls-ca", arguments))
}

/// Nanoseconds on CLOCK_MONOTONIC: one clock for every process on this machine, so the
/// driver can compare the time it renamed the file with the times clients applied it.
func monotonicNanos() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// The benchmark's state: `count` gateway services plus `flat` with 16 endpoints; change
/// `step` marks endpoint `step % 16` not ready (all ready at step 0).
func benchState(services count: Int, step: Int) -> MirrorState {
    let cluster = Cluster(name: "paris", gateway: Gateway(addresses: ["10.99.1.2"]))
    var services = (0..<count).map { index in
        MirroredService(name: "svc-\(index)", namespace: "default", cluster: "paris", mode: .gateway,
                        ips: ["10.\(112 + index / 62500).\(index / 250 % 250).\(index % 250 + 1)"], ports: [ServicePort(name: "http", port: 80)])
    }
    let endpoints = (0..<16).map { index in
        Endpoint(ip: "10.20.0.\(index + 1)", ready: index != step % 16 || step == 0, hostname: "flat-\(index)")
    }
    services.append(MirroredService(name: "flat", namespace: "default", cluster: "paris", mode: .remoteDiscovery,
                                    ips: ["10.111.0.1"], ports: [ServicePort(name: "http", port: 80, targetPort: 8080)], endpoints: endpoints))
    return MirrorState(clusters: [cluster], services: services)
}

/// Writes `state` to a temporary file, then renames it over `path` (as editors and
/// ConfigMap updates do). - Returns: the monotonic time of the rename: "the file changed".
@discardableResult
func writeAtomically(_ state: MirrorState, to path: String) throws -> UInt64 {
    let temporary = path + ".tmp"
    try state.canonicalJSON().write(to: URL(fileURLWithPath: temporary))
    let renamed = monotonicNanos()
    guard rename(temporary, path) == 0 else { throw BenchError(description: "rename \(temporary) failed: errno \(errno)") }
    return renamed
}

/// One figure from the server's `/metrics`, read with curl (over TLS when `tls` is given).
func metric(_ name: String, url: String, tls: FeedTLSFiles?) throws -> Double {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    var curlArguments = ["-sS", "\(url)/metrics"]
    if let tls { curlArguments += ["--cacert", tls.ca, "--cert", tls.certificate, "--key", tls.key] }
    process.arguments = curlArguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
        return Double(line.split(separator: " ").last ?? "") ?? 0
    }
    throw BenchError(description: "metric \(name) not found at \(url)/metrics")
}

/// CPU seconds (user + system) a process has used, from /proc/PID/stat; nil when unknown.
func cpuSeconds(pid: Int32?) -> Double? {
    guard let pid, let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    // After the command: state is field 3; utime and stime are fields 14 and 15.
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
    return sorted[max(0, min(sorted.count - 1, rank))]
}

/// Prints glibc's allocator totals to stderr (`malloc_stats`, looked up at run time: Swift's
/// Glibc module does not import `malloc.h`); "in use bytes" before and after a step is that
/// step's heap. Does nothing where there is no such function.
func printMallocStats(_ label: String) {
    FileHandle.standardError.write(Data("== malloc_stats \(label)\n".utf8))
    #if canImport(Glibc)
    guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "malloc_stats") else { return }
    unsafeBitCast(symbol, to: (@convention(c) () -> Void).self)()
    #endif
}

/// CPU time (user + system) this process has used: steadier than wall time on a shared machine.
func processCPUSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}
