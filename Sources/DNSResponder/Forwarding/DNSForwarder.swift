import Logging
import NIOCore

/// Settings for forwarding names the record table does not own.
public struct DNSForwardingConfiguration: Sendable {
    /// Upstream servers, tried in order for each query.
    public var upstreams: [SocketAddress]
    /// How long to wait for one upstream before trying the next.
    public var timeout: TimeAmount
    /// Upstream queries in flight at once (over all event loops); beyond it clients get
    /// SERVFAIL at once instead of queuing without bound.
    public var maximumInFlight: Int
    /// The most answers kept in the cache.
    public var cacheEntries: Int
    /// The longest time a positive answer is cached, whatever its TTL says.
    public var maximumCacheTTL: UInt32

    public init(upstreams: [SocketAddress], timeout: TimeAmount = .seconds(2), maximumInFlight: Int = 1024,
                cacheEntries: Int = 10_000, maximumCacheTTL: UInt32 = 3600) {
        self.upstreams = upstreams
        self.timeout = timeout
        self.maximumInFlight = maximumInFlight
        self.cacheEntries = cacheEntries
        self.maximumCacheTTL = maximumCacheTTL
    }
}

/// Forwards queries to the upstreams for one event loop (the answerers look in the cache
/// first and hand over only misses; answers are stored there): identical queries in
/// flight are joined, then upstreams in order (UDP, TCP on truncation or for TCP
/// clients), SERVFAIL when every upstream fails.
///
/// Confined to its event loop; the server keeps one per loop, splits the in-flight budget
/// between them, and gives them one shared cache.
final class DNSForwarder {
    typealias Reply = (ByteBuffer) -> Void

    private let loop: any EventLoop
    private let configuration: DNSForwardingConfiguration
    private let inFlightLimit: Int
    private var inFlight = 0
    private let cache: DNSSharedResponseCache
    private var waiting: [[UInt8]: [(DNSForwardRequest, Reply)]] = [:]
    private let logger: Logger
    /// When the last "every upstream failed" warning was logged: at most one per 10 s per
    /// loop, so an upstream outage at thousands of queries per second does not flood logs.
    private var lastFailureLog: NIODeadline = .uptimeNanoseconds(0)
    private var failuresSinceLog = 0
    /// Per-upstream counters, indexed like `configuration.upstreams`, shared by the loops.
    private let health: DNSUpstreamHealthBoard

    init(loop: any EventLoop, configuration: DNSForwardingConfiguration, cache: DNSSharedResponseCache, health: DNSUpstreamHealthBoard,
         share: Int, logger: Logger) {
        self.loop = loop
        self.configuration = configuration
        let parts = max(1, share)
        inFlightLimit = max(1, configuration.maximumInFlight / parts)
        self.cache = cache
        self.logger = logger
        self.health = health
    }

    /// Queries in flight on this loop (for tests and metrics).
    var inFlightCount: Int { inFlight }

    /// Answers `request` (a cache miss) through `reply`, at once when overloaded, otherwise
    /// when an upstream answers or all have failed. `reply` runs on this loop.
    func resolve(_ request: DNSForwardRequest, allocator: ByteBufferAllocator, reply: @escaping Reply) {
        if waiting[request.key] != nil {
            waiting[request.key]?.append((request, reply))
            return
        }
        guard inFlight < inFlightLimit, !configuration.upstreams.isEmpty else {
            reply(Self.serverFailure(request, allocator: allocator))
            return
        }
        inFlight += 1
        waiting[request.key] = [(request, reply)]
        attempt(request, upstream: 0, overTCP: request.overTCP, allocator: allocator)
    }

    private func attempt(_ request: DNSForwardRequest, upstream index: Int, overTCP: Bool, allocator: ByteBufferAllocator) {
        guard index < configuration.upstreams.count else {
            finish(request, answer: nil, allocator: allocator)
            return
        }
        let upstream = configuration.upstreams[index]
        health.update(index) { $0.recordSent() }
        let sentAt = NIODeadline.now()
        DNSUpstreamExchange.send(question: request.question, checkingDisabled: request.query.flags & DNSHeader.cdBit != 0,
                                 dnssecOK: request.query.edns?.dnssecOK ?? false, to: upstream, overTCP: overTCP,
                                 timeout: configuration.timeout, maximumTTL: configuration.maximumCacheTTL, on: loop)
            .assumeIsolated()
            .whenSuccess { outcome in
                let latency = NIODeadline.now() - sentAt
                switch outcome {
                case .answer(let answer):
                    self.health.update(index) { $0.recordAnswer(latency: latency) }
                    self.finish(request, answer: answer, allocator: allocator)
                case .truncated:
                    self.health.update(index) { $0.recordTruncated(latency: latency) }
                    self.attempt(request, upstream: index, overTCP: true, allocator: allocator)
                case .failed(let reason):
                    self.health.update(index) { $0.recordError() }
                    self.logger.debug("upstream failed; trying the next", metadata: ["upstream": "\(upstream)", "reason": "\(reason)"])
                    self.attempt(request, upstream: index + 1, overTCP: request.overTCP, allocator: allocator)
                case .timedOut(let reason):
                    self.health.update(index) { $0.recordTimeout() }
                    self.logger.debug("upstream timed out; trying the next", metadata: ["upstream": "\(upstream)", "reason": "\(reason)"])
                    self.attempt(request, upstream: index + 1, overTCP: request.overTCP, allocator: allocator)
                case .unrelated:
                    self.health.update(index) { $0.recordError() }
                    self.attempt(request, upstream: index + 1, overTCP: request.overTCP, allocator: allocator)
                }
            }
    }

    private func finish(_ original: DNSForwardRequest, answer: DNSUpstreamAnswer?, allocator: ByteBufferAllocator) {
        inFlight -= 1
        let waiters = waiting.removeValue(forKey: original.key) ?? []
        guard let answer else {
            failuresSinceLog += 1
            let now = NIODeadline.now()
            if let first = waiters.first, now - lastFailureLog >= .seconds(10) {
                logger.warning("every upstream failed; answering SERVFAIL (check --upstream)", metadata: [
                    "upstreams": "\(configuration.upstreams.map { "\($0)" }.joined(separator: ", "))",
                    "failed-queries-since-last-warning": "\(failuresSinceLog)", "example": "\(Self.describe(first.0))"])
                lastFailureLog = now
                failuresSinceLog = 0
            }
            for (request, reply) in waiters { reply(Self.serverFailure(request, allocator: allocator)) }
            return
        }
        cache.store(answer, key: original.key, hash: original.keyHash, now: .now())
        for (request, reply) in waiters {
            var buffer = allocator.buffer(capacity: answer.bytes.count + DNSResponseWriter.optLength)
            request.question.withUnsafeBytes { question in
                DNSResponseCache.response(to: request.query, question: question, answer: answer, age: 0,
                                          limit: DNSResponseWriter.sizeLimit(for: request.query, overTCP: request.overTCP),
                                          into: &buffer)
            }
            reply(buffer)
        }
    }

    private static func serverFailure(_ request: DNSForwardRequest, allocator: ByteBufferAllocator) -> ByteBuffer {
        var packet = [UInt8](repeating: 0, count: DNSLimits.headerSize)
        packet.append(contentsOf: request.question)
        var buffer = allocator.buffer(capacity: packet.count + DNSResponseWriter.optLength)
        packet.withUnsafeBytes { DNSResponseWriter.bare(request.query, packet: $0, rcode: .serverFailure, into: &buffer) }
        return buffer
    }

    private static func describe(_ request: DNSForwardRequest) -> String {
        let name = (try? DNSName(wire: Array(request.question.prefix(request.query.nameLength))))?.description ?? "?"
        return "\(name) \(DNSRecordType(rawValue: request.query.type))"
    }
}
