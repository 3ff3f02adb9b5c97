import ArgumentParser
import Foundation
import Logging
import NFTables
import MirrorModel
import MirrorFeed

extension RulesOptions {
    /// Does the one-shot job (--print-ruleset, --cleanup, --once) if one was asked for.
    ///
    /// - Returns: true when a one-shot job ran and `run` should exit.
    func runOneShot(statePath: String?, interceptedDNS: [IPAddress] = [], logger: Logger) async throws -> Bool {
        guard isOneShot else { return false }
        do {
            if cleanup {
                let component = try RulesComponent(dnsAddresses: [], logger: logger)
                let removed = try await component.removeTables()
                print(removed.isEmpty ? "no mirror-agent tables to remove" : "removed: \(removed.summary)")
                return true
            }
            guard let statePath else { throw ValidationError("--feed file:PATH is required with --once and --print-ruleset") }
            let clock = ContinuousClock()
            let loadStart = clock.now
            var store = MirrorStore()
            let changes = try store.applySnapshot(try MirrorState(contentsOf: statePath), revision: 1)
            logger.debug("loaded state file", metadata: ["duration_ms": "\((clock.now - loadStart).milliseconds)", "services": "\(store.services.count)"])
            if printRuleset {
                print(RulesTranslator.layout(for: store, dnsAddresses: notrackAddresses, interceptedDNS: interceptedDNS).desired.nftText,
                      terminator: "")
                return true
            }
            let component = try RulesComponent(dnsAddresses: notrackAddresses, interceptedDNS: interceptedDNS, logger: logger)
            let sent = try await component.applyAndReport(MirrorUpdate(store: store, changes: changes))
            guard try await component.kernelMatchesDesired() else {
                printError("nftables: the kernel does not hold the desired rules after programming (another process changed them?)")
                throw ExitCode(1)
            }
            print("nftables programmed: \(sent.summary)")
            return true
        } catch let error as NFTablesError {
            printError("nftables: \(error)")
            throw ExitCode(1)
        }
    }

    /// The nftables consumer for a long-running agent, or nil with --no-nftables.
    /// - Parameters:
    ///   - dnsAddresses: the DNS listener addresses to untrack (the --dns-address values, or
    ///     the default link-local one).
    ///   - interceptedDNS: the cluster DNS addresses untracked while the agent listens.
    func makeConsumer(dnsAddresses: [IPAddress], interceptedDNS: [IPAddress], logger: Logger) throws -> RulesComponent? {
        guard !noNftables else { return nil }
        do {
            return try RulesComponent(dnsAddresses: dnsAddresses, interceptedDNS: interceptedDNS, logger: logger)
        } catch let error as NFTablesError {
            printError("nftables: \(error)")
            throw ExitCode(1)
        }
    }
}
