import NIOConcurrencyHelpers
import NIOCore

/// How one upstream server has been doing: what was sent to it, how it answered, how fast,
/// and whether it currently looks usable. Part of ``DNSStatistics``, so `mirror-agent dump`
/// and `/metrics` can tell an operator *which* `--upstream` is failing, not just that
/// queries end in SERVFAIL.
///
/// Kept once per server for all event loops (``DNSUpstreamHealthBoard``), so a failure
/// streak counts every loop's queries in the order they ended.
public struct DNSUpstreamHealth: Sendable, Equatable {
    /// After this many failures in a row (timeouts, errors, failure rcodes) with no answer
    /// in between, the upstream is reported unhealthy; one answer makes it healthy again.
    public static let unhealthyAfter = 3
    /// Weight of the newest sample in ``latencyMicroseconds``: 1/8, the smoothing TCP uses
    /// for its RTT estimate (RFC 6298), so one slow answer moves the figure but does not
    /// dominate it.
    static let latencyWeightShift = 3

    /// The upstream, as configured (`address:port`).
    public var upstream: String
    /// Queries sent to it, over UDP and TCP (a TCP retry after truncation counts again).
    public var queriesSent: UInt64 = 0
    /// Usable answers received (NOERROR or NXDOMAIN, well formed).
    public var answers: UInt64 = 0
    /// Queries it did not answer within the forwarding timeout.
    public var timeouts: UInt64 = 0
    /// Queries that failed otherwise: connection or socket errors, failure rcodes
    /// (SERVFAIL, REFUSED, …) and malformed answers.
    public var errors: UInt64 = 0
    /// UDP answers with TC set, asked again over TCP.
    public var truncatedRetries: UInt64 = 0
    /// Smoothed time from sending a query to receiving its answer (or its truncated UDP
    /// answer), in microseconds; 0 until something came back.
    public var latencyMicroseconds: UInt64 = 0
    /// Failures since the last answer.
    public var consecutiveFailures: Int = 0

    /// Whether the upstream answered recently: fewer than ``unhealthyAfter`` failures in a
    /// row. An upstream never asked counts as healthy.
    public var healthy: Bool { consecutiveFailures < Self.unhealthyAfter }

    public init(upstream: String) {
        self.upstream = upstream
    }

    /// `address:port` (`[address]:port` for IPv6), as an operator writes `--upstream`.
    static func name(of address: SocketAddress) -> String {
        let ip = address.ipAddress ?? "\(address)"
        let port = address.port.map { ":\($0)" } ?? ""
        return address.protocol == .inet6 ? "[\(ip)]\(port)" : "\(ip)\(port)"
    }

    /// A query left for this upstream.
    mutating func recordSent() {
        queriesSent &+= 1
    }

    /// A usable answer came back `latency` after the query was sent.
    mutating func recordAnswer(latency: TimeAmount) {
        answers &+= 1
        consecutiveFailures = 0
        recordLatency(latency)
    }

    /// The UDP answer was truncated; the query is asked again over TCP.
    mutating func recordTruncated(latency: TimeAmount) {
        truncatedRetries &+= 1
        recordLatency(latency)
    }

    /// No answer within the timeout.
    mutating func recordTimeout() {
        timeouts &+= 1
        consecutiveFailures += 1
    }

    /// Any other failure.
    mutating func recordError() {
        errors &+= 1
        consecutiveFailures += 1
    }

    private mutating func recordLatency(_ latency: TimeAmount) {
        let sample = UInt64(clamping: max(latency.nanoseconds, 0) / 1000)
        if latencyMicroseconds == 0 {
            latencyMicroseconds = max(sample, 1)
        } else {
            // ewma += (sample - ewma) / 8, in integers.
            let shift = UInt64(Self.latencyWeightShift)
            latencyMicroseconds = max((latencyMicroseconds << shift - latencyMicroseconds + sample) >> shift, 1)
        }
    }
}

/// The health of every upstream, shared by the server's event loops behind one lock. It is
/// touched only when a query goes to an upstream or comes back, a path that already opens
/// a socket per query, never when answering from the table or the cache.
final class DNSUpstreamHealthBoard: Sendable {
    private let health: NIOLockedValueBox<[DNSUpstreamHealth]>

    init(upstreams: [SocketAddress]) {
        health = NIOLockedValueBox(upstreams.map { DNSUpstreamHealth(upstream: DNSUpstreamHealth.name(of: $0)) })
    }

    /// Applies `change` to the figures of upstream number `index`.
    func update(_ index: Int, _ change: (inout DNSUpstreamHealth) -> Void) {
        health.withLockedValue { all in
            guard all.indices.contains(index) else { return }
            change(&all[index])
        }
    }

    /// Every upstream's figures, in configuration order.
    var snapshot: [DNSUpstreamHealth] { health.withLockedValue { $0 } }
}
