import Foundation
import Logging
import DNSResponder
import Sync

/// Opens the DNS listeners only once the first mirror state is known, then forwards every
/// update to the ``DNSComponent``.
///
/// A new agent joining a running one's port (rolling restart) therefore answers mirrored
/// names from its first query on. Failing to bind is fatal: a node agent that cannot serve
/// DNS must be restarted, not limp on.
actor DeferredDNS: MirrorConsumer {
    private let options: DNSOptions
    private let logger: Logger
    private let onStart: @Sendable (DNSComponent) async -> Void
    private var component: DNSComponent?
    private var stopped = false

    init(options: DNSOptions, logger: Logger, onStart: @escaping @Sendable (DNSComponent) async -> Void) {
        self.options = options
        self.logger = logger
        self.onStart = onStart
    }

    /// Stops answering (see ``DNSComponent/close()``); later updates are ignored.
    func shutdown() async {
        await component?.close()
        component = nil
        stopped = true
    }

    /// Query counters since the listeners opened (nil before).
    func statistics() async -> DNSStatistics? {
        guard let component else { return nil }
        return await component.statistics()
    }

    func apply(_ update: MirrorUpdate) async throws {
        guard !stopped else { return }
        if let component {
            try await component.apply(update)
            return
        }
        do {
            let clock = ContinuousClock()
            let began = clock.now
            guard let started = try await DNSComponent.start(options: options, initial: update, logger: logger) else { return }
            component = started
            logger.info("DNS records loaded", metadata: ["revision": "\(update.store.revision)", "took": "\(clock.now - began)"])
            await onStart(started)
        } catch {
            printError("mirror-agent run: \(error)")
            exit(1)
        }
    }
}
