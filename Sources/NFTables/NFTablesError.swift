#if canImport(Glibc)
import Glibc
#endif
import Netlink

/// One change the kernel (or the fake) refused, named so an operator can find its cause.
public struct RejectedChange: Sendable, CustomStringConvertible {
    /// The refused change, in nft syntax (shortened for large element lists).
    public var change: String
    /// The object it concerns: a service (from the element comment), a chain or a set.
    public var subject: String
    public var errno: Int32
    /// The kernel's extended-ack text, if any.
    public var kernelMessage: String?

    public init(change: String, subject: String, errno: Int32, kernelMessage: String? = nil) {
        self.change = change
        self.subject = subject
        self.errno = errno
        self.kernelMessage = kernelMessage
    }

    public var description: String {
        var text = "\(subject): \(NetlinkError.name(of: errno)) (\(String(cString: strerror(errno))))"
        if let kernelMessage, !kernelMessage.isEmpty { text += " — \(kernelMessage)" }
        return text + " in `\(change)`"
    }
}

/// Why the ruleset could not be read or changed.
public enum NFTablesError: Error, Sendable, CustomStringConvertible {
    /// nf_tables is not usable here: no permission (CAP_NET_ADMIN) or no kernel support.
    case unavailable(NetlinkError)
    /// The batch was refused as a whole; the kernel is exactly as before.
    case rejected([RejectedChange])
    /// Other writers kept changing the ruleset between our read and our commit.
    case generationRace(attempts: Int)
    /// Talking to the kernel failed.
    case kernel(NetlinkError)

    public var description: String {
        switch self {
        case .unavailable(let error) where error.isPermissionDenied:
            "permission denied by the kernel (\(error)); the agent needs CAP_NET_ADMIN: run it as root or grant the capability, or pass --no-nftables"
        case .unavailable(let error):
            "the kernel has no usable nf_tables (\(error)); load the nf_tables module (modprobe nf_tables) or pass --no-nftables"
        case .rejected(let changes):
            "the kernel rejected the nftables batch, nothing was changed: " + changes.prefix(5).map(\.description).joined(separator: "; ")
                + (changes.count > 5 ? "; … \(changes.count - 5) more" : "")
        case .generationRace(let attempts):
            "the nftables ruleset kept changing under us (\(attempts) attempts); another process is rewriting it continuously"
        case .kernel(let error):
            "nftables netlink call failed: \(error)"
        }
    }

    /// Wraps a netlink error, classifying permission and missing-support errors.
    static func from(_ error: NetlinkError) -> NFTablesError {
        switch error.errno {
        case EPERM, EACCES, EPROTONOSUPPORT, EAFNOSUPPORT, EOPNOTSUPP: .unavailable(error)
        default: .kernel(error)
        }
    }
}
