import Netlink
import NFTables
import Testing
@testable import MirrorAgent

/// Which conntrack entries a rule change must clear (the kernel side is in NFTablesTests'
/// StaleFlowTests).
@Suite struct StaleFlowsTests {
    static func rule(_ proto: UInt8 = 17, vips: [String] = ["10.112.0.20"], targets: [(String, UInt16)]) -> ServicePortRule {
        ServicePortRule(service: "default/dns-paris", proto: proto, port: 53, addresses: vips.compactMap(IPAddress.init),
                        targets: targets.compactMap { address, port in IPAddress(address).map { .init(address: $0, port: port) } })
    }

    static func selector(_ vip: String, _ target: String, _ port: UInt16) -> ConntrackSelector {
        let vip = IPAddress(vip)!, target = IPAddress(target)!
        return ConntrackSelector(family: UInt8(vip.family.protocolFamily), proto: 17, destination: vip.bytes, destinationPort: 53,
                                 replySource: target.bytes, replySourcePort: port)
    }

    @Test func aRemovedTargetsFlowsAreClearedOthersKept() {
        let old = [Self.rule(targets: [("10.99.1.2", 5300), ("10.99.1.3", 5300)])]
        let new = [Self.rule(targets: [("10.99.1.2", 5300)])]
        #expect(StaleFlows.selectors(old: old, new: new) == [Self.selector("10.112.0.20", "10.99.1.3", 5300)])
    }

    @Test func aTargetPortChangeIsARemoval() {
        let old = [Self.rule(targets: [("10.20.1.5", 5300)])]
        let new = [Self.rule(targets: [("10.20.1.5", 5301)])]
        #expect(StaleFlows.selectors(old: old, new: new) == [Self.selector("10.112.0.20", "10.20.1.5", 5300)])
    }

    @Test func noTargetLeftClearsEveryFlow() {
        let old = [Self.rule(targets: [("10.99.1.2", 5300)])]
        #expect(StaleFlows.selectors(old: old, new: [Self.rule(targets: [])]) == [Self.selector("10.112.0.20", "10.99.1.2", 5300)])
        #expect(StaleFlows.selectors(old: old, new: []) == [Self.selector("10.112.0.20", "10.99.1.2", 5300)], "service gone")
    }

    @Test func targetsAfterNoneClearUnNATedFlows() {
        let new = [Self.rule(targets: [("10.99.1.2", 5300)])]
        #expect(StaleFlows.selectors(old: [Self.rule(targets: [])], new: new) == [Self.selector("10.112.0.20", "10.112.0.20", 53)])
        #expect(StaleFlows.selectors(old: [], new: new) == [Self.selector("10.112.0.20", "10.112.0.20", 53)], "new service")
    }

    @Test func tcpFlowsAreLeftAlone() {
        let old = [Self.rule(6, targets: [("10.99.1.2", 4143), ("10.99.1.3", 4143)])]
        let new = [Self.rule(6, targets: [("10.99.1.2", 4143)])]
        #expect(StaleFlows.selectors(old: old, new: new).isEmpty)
    }

    @Test func unchangedRulesClearNothing() {
        let rules = [Self.rule(targets: [("10.99.1.2", 5300)])]
        #expect(StaleFlows.selectors(old: rules, new: rules).isEmpty)
    }

    @Test func ipv6FlowsPairWithIPv6Targets() {
        let old = [Self.rule(132, vips: ["10.112.0.20", "fd00::20"], targets: [("10.20.1.5", 5300), ("fd00:20::5", 5300)])]
        let new = [Self.rule(132, vips: ["10.112.0.20", "fd00::20"], targets: [("10.20.1.5", 5300)])]
        let selectors = StaleFlows.selectors(old: old, new: new)
        #expect(selectors.count == 1)
        #expect(selectors.first?.family == 10 && selectors.first?.proto == 132)
        #expect(selectors.first?.destination == IPAddress("fd00::20")!.bytes && selectors.first?.replySource == IPAddress("fd00:20::5")!.bytes)
    }
}
