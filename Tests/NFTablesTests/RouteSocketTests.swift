import Testing
import Netlink

/// The dummy link and the DNS listener addresses through libnl-route, in a fresh namespace.
struct RouteSocketTests {
    @Test func addressesOnALink() throws {
        guard TestNamespace.isRoot else { print("skipped: kernel tests need root"); return }
        let namespace = try TestNamespace("route")
        let socket = Unchecked(try namespace.run { try RouteSocket() })
        defer { socket.value.close() }
        var link = "mirror0"
        do {
            try socket.value.ensureDummyLink(link)
            try socket.value.ensureDummyLink(link) // idempotent
            #expect(try namespace.exec(["ip", "link", "show", link]).contains("UP"))
        } catch let error as RouteError where error.isUnsupported {
            print("note: this kernel has no dummy interfaces (\(error)); testing addresses on lo")
            link = "lo"
        }
        try socket.value.addAddress("169.254.20.10", to: link)
        try socket.value.addAddress("fd00::53/128", to: link)
        try socket.value.addAddress("169.254.20.10", to: link) // idempotent
        var shown = try namespace.exec(["ip", "addr", "show", "dev", link])
        #expect(shown.contains("inet 169.254.20.10/32"), "\(shown)")
        #expect(shown.contains("inet6 fd00::53/128"), "\(shown)")

        try socket.value.removeAddress("169.254.20.10", from: link)
        try socket.value.removeAddress("169.254.20.10", from: link) // already gone
        shown = try namespace.exec(["ip", "addr", "show", "dev", link])
        #expect(!shown.contains("169.254.20.10"), "\(shown)")
        #expect(throws: RouteError.self) { try socket.value.addAddress("169.254.20.10", to: "no-such-link") }

        if link == "mirror0" {
            try socket.value.deleteLink(link)
            try socket.value.deleteLink(link) // already gone
            #expect(!(try namespace.exec(["ip", "link", "show"])).contains("mirror0"))
        }
    }
}
