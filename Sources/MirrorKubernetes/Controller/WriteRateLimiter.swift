/// A token bucket for writes to the local API server: `burst` writes at once, then `qps` a
/// second.
///
/// client-go's default (5 QPS, burst 10) makes a Link with thousands of services take
/// minutes to mirror; the rate here is the operator's (`--write-qps`, `--write-burst`).
/// Waiters reserve their token before sleeping, so they are served in arrival order.
actor WriteRateLimiter {
    let qps: Double
    let burst: Double
    private var tokens: Double
    private var refilled: ContinuousClock.Instant

    init(qps: Double, burst: Int) {
        self.qps = max(qps, 0.001)
        self.burst = Double(max(burst, 1))
        tokens = self.burst
        refilled = .now
    }

    /// Waits for a write's turn. Throws only when the task is cancelled.
    func acquire() async throws {
        let now = ContinuousClock.now
        let elapsed = now - refilled
        refilled = now
        tokens = min(burst, tokens + elapsed.seconds * qps)
        tokens -= 1
        guard tokens < 0 else { return }
        try await Task.sleep(for: .seconds(-tokens / qps))
    }
}
