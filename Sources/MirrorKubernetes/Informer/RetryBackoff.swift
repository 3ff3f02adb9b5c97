import Foundation

/// Exponential backoff with a ceiling and jitter, for retrying an API server.
///
/// The ceiling keeps a recovered server from waiting on a client that backed off for
/// minutes; the jitter keeps many informers that failed together (one remote cluster going
/// away cuts all of its watches at once) from coming back in lockstep.
public struct RetryBackoff: Sendable, Equatable {
    public var initial: Duration
    public var maximum: Duration
    public var multiplier: Double
    /// Each delay is shortened by up to this fraction, at random.
    public var jitter: Double

    public init(initial: Duration = .milliseconds(500), maximum: Duration = .seconds(30), multiplier: Double = 2,
                jitter: Double = 0.5) {
        self.initial = initial
        self.maximum = max(initial, maximum)
        self.multiplier = max(1, multiplier)
        self.jitter = min(1, max(0, jitter))
    }

    /// The wait after `failures` consecutive failures (1 for the first); `unit` in [0, 1)
    /// picks the jitter (random unless a test fixes it).
    public func delay(afterFailures failures: Int, unit: Double = Double.random(in: 0..<1)) -> Duration {
        let initialSeconds = initial.seconds, maximumSeconds = maximum.seconds
        // Past ~60 doublings the power overflows to infinity; the ceiling applies long before.
        let exponent = Double(min(max(0, failures - 1), 60))
        let base = min(maximumSeconds, initialSeconds * pow(multiplier, exponent))
        return .seconds(base * (1 - jitter * min(max(unit, 0), 1)))
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
