/// The API's `Status` object: what every failed request (and a watch's ERROR event) carries.
public struct KubeStatus: Codable, Sendable, Hashable, CustomStringConvertible {
    /// Success or Failure.
    public var status: String?
    public var message: String?
    /// A CamelCase reason: NotFound, AlreadyExists, Conflict, Expired, Gone, …
    public var reason: String?
    /// The HTTP status code it stands for.
    public var code: Int?

    public init(status: String? = "Failure", message: String? = nil, reason: String? = nil, code: Int? = nil) {
        self.status = status
        self.message = message
        self.reason = reason
        self.code = code
    }

    public var description: String {
        var text = code.map { "\($0)" } ?? "status"
        if let reason, !reason.isEmpty { text += " \(reason)" }
        if let message, !message.isEmpty { text += ": \(message)" }
        return text
    }
}

/// Why a request failed, sorted by what a caller does about it.
public enum KubeError: Error, CustomStringConvertible, Sendable {
    /// 410 Gone: the resourceVersion (or continue token) is older than the server keeps.
    /// List again and watch from the new list's version.
    case expired(KubeStatus)
    /// 409 on an update: someone changed the object since it was read. Read it and retry.
    case conflict(KubeStatus)
    /// 409 on a create: an object with that name exists.
    case alreadyExists(KubeStatus)
    case notFound(KubeStatus)
    /// 401 or 403: the credentials are wrong or lack the permission.
    case unauthorized(KubeStatus)
    /// Any other non-success status.
    case status(KubeStatus)
    /// No usable HTTP exchange: connection refused or reset, TLS failure, a watch cut mid-stream.
    case transport(String)
    /// A request or a stalled response took longer than allowed.
    case timedOut(String)
    /// The server answered with something that is not the expected JSON.
    case decoding(String)

    /// Maps a failed response to its case.
    static func from(status: KubeStatus) -> KubeError {
        switch (status.code, status.reason) {
        case (410, _), (_, "Expired"), (_, "Gone"): .expired(status)
        case (409, "AlreadyExists"): .alreadyExists(status)
        case (409, _): .conflict(status)
        case (404, _): .notFound(status)
        case (401, _), (403, _): .unauthorized(status)
        default: .status(status)
        }
    }

    public var status: KubeStatus? {
        switch self {
        case .expired(let status), .conflict(let status), .alreadyExists(let status), .notFound(let status),
             .unauthorized(let status), .status(let status):
            status
        case .transport, .timedOut, .decoding:
            nil
        }
    }

    /// Whether trying again later may succeed (server trouble, throttling, the network);
    /// client mistakes (400, 404, 422, 401/403) will not go away by themselves.
    public var isTransient: Bool {
        switch self {
        case .transport, .timedOut, .expired, .conflict: true
        case .status(let status): status.code.map { $0 >= 500 || $0 == 429 } ?? true
        case .alreadyExists, .notFound, .unauthorized, .decoding: false
        }
    }

    public var description: String {
        switch self {
        case .expired(let status): "expired (\(status))"
        case .conflict(let status): "conflict (\(status))"
        case .alreadyExists(let status): "already exists (\(status))"
        case .notFound(let status): "not found (\(status))"
        case .unauthorized(let status): "unauthorized (\(status))"
        case .status(let status): "\(status)"
        case .transport(let reason): reason
        case .timedOut(let reason): "timed out: \(reason)"
        case .decoding(let reason): "cannot decode the response: \(reason)"
        }
    }
}
