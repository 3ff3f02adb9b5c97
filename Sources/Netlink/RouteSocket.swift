#if canImport(Glibc)
import Glibc
#endif
import CNlRoute

/// A libnl-route socket for the few link and address changes the agent makes: the dummy
/// interface that carries the DNS listener address (like NodeLocal DNSCache's).
///
/// Belongs to the network namespace of the thread that created it. Not thread-safe. Call
/// ``close()`` when done.
public final class RouteSocket {
    private var socket: OpaquePointer?

    /// Opens and connects a `NETLINK_ROUTE` socket.
    /// - Throws: ``RouteError`` naming the call.
    public init() throws {
        guard let socket = nl_socket_alloc() else { throw RouteError(call: "nl_socket_alloc", code: -Int32(NLE_NOMEM), subject: "route socket") }
        let status = nl_connect(socket, NETLINK_ROUTE)
        guard status == 0 else {
            nl_socket_free(socket)
            throw RouteError(call: "nl_connect(NETLINK_ROUTE)", code: status, subject: "route socket")
        }
        self.socket = socket
    }

    deinit { if let socket { nl_socket_free(socket) } }

    /// Closes the socket; further use is a programming error.
    public func close() {
        if let socket { nl_socket_free(socket) }
        socket = nil
    }

    private var handle: OpaquePointer {
        guard let socket else { preconditionFailure("RouteSocket used after close()") }
        return socket
    }

    /// Creates a dummy link called `name` and brings it up; an existing link is just brought up.
    public func ensureDummyLink(_ name: String) throws {
        guard let link = rtnl_link_alloc() else { throw RouteError(call: "rtnl_link_alloc", code: -Int32(NLE_NOMEM), subject: name) }
        defer { rtnl_link_put(link) }
        rtnl_link_set_name(link, name)
        _ = rtnl_link_set_type(link, "dummy")
        rtnl_link_set_flags(link, UInt32(IFF_UP))
        let status = rtnl_link_add(handle, link, NLM_F_CREATE)
        if status == -Int32(NLE_EXIST) {
            try setUp(name)
        } else if status < 0 {
            throw RouteError(call: "rtnl_link_add(dummy)", code: status, subject: "link \(name)")
        }
    }

    /// Deletes the link called `name`; a missing link is not an error.
    public func deleteLink(_ name: String) throws {
        guard let link = rtnl_link_alloc() else { throw RouteError(call: "rtnl_link_alloc", code: -Int32(NLE_NOMEM), subject: name) }
        defer { rtnl_link_put(link) }
        rtnl_link_set_name(link, name)
        let status = rtnl_link_delete(handle, link)
        if status < 0 && status != -Int32(NLE_NODEV) && status != -Int32(NLE_OBJ_NOTFOUND) {
            throw RouteError(call: "rtnl_link_delete", code: status, subject: "link \(name)")
        }
    }

    /// The interface index of `name`.
    public func index(of name: String) throws -> Int32 {
        var link: OpaquePointer?
        let status = rtnl_link_get_kernel(handle, 0, name, &link)
        guard status == 0, let link else { throw RouteError(call: "rtnl_link_get_kernel", code: status, subject: "link \(name)") }
        defer { rtnl_link_put(link) }
        return rtnl_link_get_ifindex(link)
    }

    private func setUp(_ name: String) throws {
        var link: OpaquePointer?
        var status = rtnl_link_get_kernel(handle, 0, name, &link)
        guard status == 0, let link else { throw RouteError(call: "rtnl_link_get_kernel", code: status, subject: "link \(name)") }
        defer { rtnl_link_put(link) }
        guard let change = rtnl_link_alloc() else { throw RouteError(call: "rtnl_link_alloc", code: -Int32(NLE_NOMEM), subject: name) }
        defer { rtnl_link_put(change) }
        rtnl_link_set_flags(change, UInt32(IFF_UP))
        status = rtnl_link_change(handle, link, change, 0)
        guard status == 0 else { throw RouteError(call: "rtnl_link_change(up)", code: status, subject: "link \(name)") }
    }

    /// Adds `address` (`169.254.20.10/32`, `fd00::53/128`; a bare address gets a host prefix)
    /// to the link `name`. An address already present is not an error.
    public func addAddress(_ address: String, to name: String) throws {
        try withAddress(address, on: name) { object in
            let status = rtnl_addr_add(handle, object, 0)
            if status < 0 && status != -Int32(NLE_EXIST) {
                throw RouteError(call: "rtnl_addr_add", code: status, subject: "address \(address) on \(name)")
            }
        }
    }

    /// Removes `address` from the link `name`. A missing address is not an error.
    public func removeAddress(_ address: String, from name: String) throws {
        try withAddress(address, on: name) { object in
            let status = rtnl_addr_delete(handle, object, 0)
            if status < 0 && status != -Int32(NLE_NOADDR) && status != -Int32(NLE_OBJ_NOTFOUND) && status != -Int32(NLE_NODEV) {
                throw RouteError(call: "rtnl_addr_delete", code: status, subject: "address \(address) on \(name)")
            }
        }
    }

    private func withAddress(_ text: String, on name: String, _ body: (OpaquePointer) throws -> Void) throws {
        let index = try index(of: name)
        let cidr = text.contains("/") ? text : text + (text.contains(":") ? "/128" : "/32")
        var local: OpaquePointer?
        let parsed = nl_addr_parse(cidr, AF_UNSPEC, &local)
        guard parsed == 0, let local else { throw RouteError(call: "nl_addr_parse", code: parsed, subject: "address \(text)") }
        defer { nl_addr_put(local) }
        guard let object = rtnl_addr_alloc() else { throw RouteError(call: "rtnl_addr_alloc", code: -Int32(NLE_NOMEM), subject: text) }
        defer { rtnl_addr_put(object) }
        rtnl_addr_set_ifindex(object, index)
        let status = rtnl_addr_set_local(object, local)
        guard status == 0 else { throw RouteError(call: "rtnl_addr_set_local", code: status, subject: "address \(text)") }
        try body(object)
    }
}

/// A failed libnl-route call, with libnl's own explanation of its error code.
public struct RouteError: Error, CustomStringConvertible {
    /// True when the kernel does not support the link type (no dummy driver).
    public var isUnsupported: Bool { code == -Int32(NLE_OPNOTSUPP) }

    public var call: String
    /// libnl's (negative) `NLE_*` code.
    public var code: Int32
    /// The link or address concerned.
    public var subject: String

    public var description: String {
        let reason = String(cString: nl_geterror(code))
        var text = "\(subject): \(call) failed: \(reason)"
        if code == -Int32(NLE_PERM) { text += "; the agent needs CAP_NET_ADMIN" }
        if code == -Int32(NLE_OPNOTSUPP) && call.hasPrefix("rtnl_link_add") {
            text += "; this kernel has no dummy interfaces (CONFIG_DUMMY); put the address on an existing link such as lo"
        }
        return text
    }
}
