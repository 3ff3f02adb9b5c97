import Prometheus

extension Prometheus.Counter {
    /// Shows a total another component keeps (it only grows there), copied in at scrape time:
    /// swift-prometheus counters only add, so the series is reset and the total added.
    /// Callers serialise scrapes; a scrape racing another could see a half-set value.
    public func set(total: UInt64) {
        reset()
        increment(by: Int64(clamping: total))
    }
}
