@testable import MirrorModel
@testable import MirrorFeed

/// A valid state with one service of each mode; tests break one field at a time.
let validYAML = """
clusterDomain: cluster.local
clusters:
  - name: paris
    gateway: {addresses: ["192.0.2.10"], port: 4143, identity: "gw.paris", alive: true}
    masquerade: true
  - name: berlin
    gateway: {addresses: ["192.0.2.20", "2001:db8::20"]}
  - name: flat
services:
  - name: bar
    namespace: default
    cluster: paris
    mode: gateway
    ips: ["10.112.0.10", "fd00::10"]
    ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080, gatewayPort: 4180}]
  - name: db
    namespace: default
    cluster: paris
    mode: remote-discovery
    ips: ["10.112.0.11"]
    ports: [{name: pg, protocol: TCP, port: 5432, targetPort: 5432}]
    endpoints: [{ip: "10.20.1.5", ready: true, hostname: db-0}]
  - name: web
    namespace: default
    mode: federated
    ips: ["10.112.0.12"]
    ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080}, {name: dns, protocol: UDP, port: 53}]
    endpoints: [{ip: "10.20.1.7", cluster: paris, ready: true}, {ip: "10.30.1.7", cluster: berlin, ready: false}]
"""

/// Parses `text`, expecting rejection, and returns the issues.
func issues(of text: String) -> [ValidationIssue] {
    do {
        _ = try MirrorState(parsing: text)
        return []
    } catch let error as InvalidStateError {
        return error.issues
    } catch {
        return [ValidationIssue(object: "unexpected", field: "", message: "\(error)")]
    }
}

/// `validYAML` with one textual substitution, which must occur exactly once.
func broken(_ original: String, _ replacement: String) -> String {
    let parts = validYAML.components(separatedBy: original)
    precondition(parts.count == 2, "fixture substitution \(original) must match once, matched \(parts.count - 1)")
    return parts.joined(separator: replacement)
}

import Foundation
