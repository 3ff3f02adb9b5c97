#if canImport(Glibc)
import Glibc
#endif
import CMnl

/// Moves the calling thread into another network namespace, so that sockets it opens afterwards
/// (netfilter, route) live there. Used by tests and tools that drive a namespace from outside.
public enum NetworkNamespace {
    /// Joins the namespace at `path` (e.g. `/var/run/netns/NAME`) for the calling thread only.
    ///
    /// - Throws: ``NetlinkError`` naming `open` or `setns` and the errno.
    public static func enter(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw NetlinkError(call: "open(\(path))", errno: errno, context: "entering a network namespace") }
        defer { close(fd) }
        guard mirror_agent_setns_net(fd) == 0 else {
            throw NetlinkError(call: "setns(\(path))", errno: errno, context: "entering a network namespace")
        }
    }
}
