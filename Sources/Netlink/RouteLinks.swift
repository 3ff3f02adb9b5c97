import CNlRoute
#if canImport(Glibc)
import Glibc
#endif

/// A failed libnl-route call, naming the call, the object and libnl's reason.
public struct RouteLinkError: Error, Equatable, CustomStringConvertible {
    public var call: String
    public var object: String
    public var reason: String
    /// True when the kernel refused for lack of CAP_NET_ADMIN.
    public var isPermissionDenied: Bool
    /// True when the kernel lacks the feature (e.g. no `dummy` link driver).
    public var isUnsupported = false

    public var description: String {
        var text = "\(call) failed for \(object): \(reason)"
        if isPermissionDenied { text += " (needs CAP_NET_ADMIN in the node's network namespace)" }
        return text
    }
}

/// The network interfaces the agent owns: a dummy link carrying the DNS listener addresses,
/// the way NodeLocal DNSCache exposes 169.254.20.10 on every node.
///
/// Every call is idempotent (an existing link or address is success), so a restarted agent
/// takes over what its predecessor created without a gap in DNS service.
public final class RouteLinks {
    private let socket: OpaquePointer

    /// Opens a NETLINK_ROUTE socket in the current network namespace.
    public init() throws {
        guard let socket = nl_socket_alloc() else {
            throw RouteLinkError(call: "nl_socket_alloc", object: "route socket", reason: "out of memory", isPermissionDenied: false)
        }
        let status = nl_connect(socket, NETLINK_ROUTE)
        guard status >= 0 else {
            nl_socket_free(socket)
            throw Self.error("nl_connect", object: "route socket", status)
        }
        self.socket = socket
    }

    deinit {
        nl_socket_free(socket)
    }

    /// Creates dummy link `name` if absent and sets it up.
    public func ensureDummyLink(_ name: String) throws {
        if try interfaceIndex(name) == nil {
            guard let link = rtnl_link_alloc() else { throw Self.error("rtnl_link_alloc", object: name, -NLE_NOMEM) }
            defer { rtnl_link_put(link) }
            rtnl_link_set_name(link, name)
            let typed = rtnl_link_set_type(link, "dummy")
            guard typed >= 0 else { throw Self.error("rtnl_link_set_type", object: name, typed) }
            rtnl_link_set_flags(link, UInt32(IFF_UP))
            let added = rtnl_link_add(socket, link, NLM_F_CREATE)
            guard added >= 0 || added == -NLE_EXIST else { throw Self.error("rtnl_link_add", object: "dummy link \(name)", added) }
        }
        try setUp(name)
    }

    /// Deletes link `name`; absent is success.
    public func deleteLink(_ name: String) throws {
        guard try interfaceIndex(name) != nil else { return }
        guard let link = rtnl_link_alloc() else { throw Self.error("rtnl_link_alloc", object: name, -NLE_NOMEM) }
        defer { rtnl_link_put(link) }
        rtnl_link_set_name(link, name)
        let status = rtnl_link_delete(socket, link)
        guard status >= 0 || status == -NLE_OBJ_NOTFOUND || status == -NLE_NODEV else {
            throw Self.error("rtnl_link_delete", object: "link \(name)", status)
        }
    }

    /// Adds host address `address` (/32 or /128) to link `name`; present is success.
    public func ensureAddress(_ address: String, on name: String) throws {
        try changeAddress(address, on: name, add: true)
    }

    /// Removes `address` from link `name`; absent is success.
    public func removeAddress(_ address: String, from name: String) throws {
        try changeAddress(address, on: name, add: false)
    }

    /// The interface index of `name`, or nil when there is no such link.
    public func interfaceIndex(_ name: String) throws -> Int32? {
        var link: OpaquePointer?
        let status = rtnl_link_get_kernel(socket, 0, name, &link)
        if status == -NLE_OBJ_NOTFOUND || status == -NLE_NODEV { return nil }
        guard status >= 0, let link else { throw Self.error("rtnl_link_get_kernel", object: "link \(name)", status) }
        defer { rtnl_link_put(link) }
        return rtnl_link_get_ifindex(link)
    }

    private func setUp(_ name: String) throws {
        var current: OpaquePointer?
        let status = rtnl_link_get_kernel(socket, 0, name, &current)
        guard status >= 0, let current else { throw Self.error("rtnl_link_get_kernel", object: "link \(name)", status) }
        defer { rtnl_link_put(current) }
        if rtnl_link_get_flags(current) & UInt32(IFF_UP) != 0 { return }
        guard let change = rtnl_link_alloc() else { throw Self.error("rtnl_link_alloc", object: name, -NLE_NOMEM) }
        defer { rtnl_link_put(change) }
        rtnl_link_set_flags(change, UInt32(IFF_UP))
        let changed = rtnl_link_change(socket, current, change, 0)
        guard changed >= 0 else { throw Self.error("rtnl_link_change", object: "link \(name) (set up)", changed) }
    }

    private func changeAddress(_ text: String, on name: String, add: Bool) throws {
        guard let index = try interfaceIndex(name) else {
            if add { throw RouteLinkError(call: "rtnl_addr_add", object: "\(text) on \(name)", reason: "no link \(name)", isPermissionDenied: false) }
            return
        }
        let prefix = text.contains(":") ? "/128" : "/32"
        var local: OpaquePointer?
        let parsed = nl_addr_parse(text + prefix, AF_UNSPEC, &local)
        guard parsed >= 0, let local else { throw Self.error("nl_addr_parse", object: text, parsed) }
        defer { nl_addr_put(local) }
        guard let address = rtnl_addr_alloc() else { throw Self.error("rtnl_addr_alloc", object: text, -NLE_NOMEM) }
        defer { rtnl_addr_put(address) }
        rtnl_addr_set_ifindex(address, index)
        let set = rtnl_addr_set_local(address, local)
        guard set >= 0 else { throw Self.error("rtnl_addr_set_local", object: text, set) }
        if add {
            let status = rtnl_addr_add(socket, address, 0)
            guard status >= 0 || status == -NLE_EXIST else { throw Self.error("rtnl_addr_add", object: "\(text) on \(name)", status) }
        } else {
            let status = rtnl_addr_delete(socket, address, 0)
            guard status >= 0 || status == -NLE_NOADDR || status == -NLE_OBJ_NOTFOUND else {
                throw Self.error("rtnl_addr_delete", object: "\(text) on \(name)", status)
            }
        }
    }

    private static func error(_ call: String, object: String, _ status: Int32) -> RouteLinkError {
        RouteLinkError(call: call, object: object, reason: String(cString: nl_geterror(status)),
                       isPermissionDenied: status == -NLE_PERM || status == -NLE_NOACCESS,
                       isUnsupported: status == -NLE_OPNOTSUPP)
    }
}
