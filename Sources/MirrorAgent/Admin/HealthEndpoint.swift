import Logging
import NIOCore

/// The agent's HTTP endpoint for the kubelet and Prometheus: `/healthz` (the process
/// serves), `/readyz` (a mirror state has been applied; 503 before), `/metrics`.
enum HealthEndpoint {
    static func serve(on address: SocketAddress, board: StatusBoard, logger: Logger) async throws -> Channel {
        try await TextHTTPServer.serve(on: address, name: "health and metrics endpoint", logger: logger) { path in
            switch path {
            case "/healthz":
                return .ok("ok\n")
            case "/readyz":
                return await board.ready ? .ok("ready\n") : .unavailable("no mirror state applied yet\n")
            case "/metrics":
                let counters = await board.wantsServiceSeries ? AgentStatus.kernelCounters() : [:]
                return .metrics(await board.prometheusText(counters: counters))
            default:
                return .notFound("/healthz, /readyz or /metrics")
            }
        }
    }
}
