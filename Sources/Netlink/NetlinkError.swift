#if canImport(Glibc)
import Glibc
#endif

/// A failed system or library call on a netlink socket, naming the call and its errno.
public struct NetlinkError: Error, Equatable, CustomStringConvertible {
    /// The call that failed (`mnl_socket_open`, `sendmsg`, …).
    public var call: String
    /// The errno it reported.
    public var errno: Int32
    /// What the caller was doing, for the operator.
    public var context: String

    public init(call: String, errno: Int32, context: String = "") {
        self.call = call
        self.errno = errno
        self.context = context
    }

    /// True when the kernel refused for lack of privilege (no CAP_NET_ADMIN).
    public var isPermissionDenied: Bool { errno == EPERM || errno == EACCES }

    public var description: String {
        var text = "\(call) failed: \(NetlinkError.name(of: errno)) (\(String(cString: strerror(errno))))"
        if !context.isEmpty { text += " while \(context)" }
        return text
    }

    /// The symbolic name of the errnos netlink commonly returns, for logs.
    public static func name(of errno: Int32) -> String {
        switch errno {
        case EPERM: "EPERM"
        case ENOENT: "ENOENT"
        case EINTR: "EINTR"
        case ENOMEM: "ENOMEM"
        case EACCES: "EACCES"
        case EBUSY: "EBUSY"
        case EEXIST: "EEXIST"
        case EINVAL: "EINVAL"
        case ENOSPC: "ENOSPC"
        case ERANGE: "ERANGE"
        case EAGAIN: "EAGAIN"
        case ENOBUFS: "ENOBUFS"
        case EMSGSIZE: "EMSGSIZE"
        case EOPNOTSUPP: "EOPNOTSUPP"
        case EPROTONOSUPPORT: "EPROTONOSUPPORT"
        case EAFNOSUPPORT: "EAFNOSUPPORT"
        case ENOTSUP: "ENOTSUP"
        case 85: "ERESTART"
        default: "errno \(errno)"
        }
    }
}

/// Kernel `ERESTART` (not exported by every libc): the ruleset generation moved on before the
/// batch was applied.
public let ERESTART_: Int32 = 85
