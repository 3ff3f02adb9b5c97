// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "mirror-agent",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "mirror-agent", targets: ["MirrorAgent"]),
        .library(name: "MirrorModel", targets: ["MirrorModel"]),
        .library(name: "MirrorFeed", targets: ["MirrorFeed"]),
        .library(name: "DNSResponder", targets: ["DNSResponder"]),
        .library(name: "NFTables", targets: ["NFTables"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    ],
    targets: [
        // C libraries, reached only from Netlink and NFTables.
        .systemLibrary(name: "CMnl", pkgConfig: "libmnl", providers: [.apt(["libmnl-dev"])]),
        .systemLibrary(name: "CNftnl", pkgConfig: "libnftnl", providers: [.apt(["libnftnl-dev"])]),
        .systemLibrary(name: "CNlRoute", pkgConfig: "libnl-route-3.0", providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]),

        // The mirror state and the exports document: model, validation, codecs, the revisioned
        // store, file sources. What every source (file, feed, Kubernetes) produces.
        .target(
            name: "MirrorModel",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // The mirror feed: protocol, server, client, persistence, TLS.
        .target(
            name: "MirrorFeed",
            dependencies: [
                "MirrorModel",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // The Kubernetes source: kubeconfig, an API client (list, watch, CRUD), informers.
        // Depends on MirrorModel only among the project's modules.
        .target(
            name: "MirrorKubernetes",
            dependencies: [
                "MirrorModel",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .target(name: "CDatagramBatch"),
        .target(name: "CHeapArenas"),
        .target(
            name: "DNSResponder",
            dependencies: [
                "CDatagramBatch",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "Netlink", dependencies: ["CMnl", "CNlRoute"]),
        // bench/feed.sh's load generator: many feed watchers in one process.
        .executableTarget(
            name: "FeedBench",
            dependencies: [
                "MirrorModel", "MirrorFeed",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "NFTables", dependencies: ["Netlink", "CNftnl", "CMnl"]),
        .executableTarget(
            name: "MirrorAgent",
            dependencies: [
                "MirrorModel", "MirrorFeed", "MirrorKubernetes", "DNSResponder", "NFTables", "Netlink", "CHeapArenas",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),

        .testTarget(name: "SyncTests", dependencies: ["MirrorModel", "MirrorFeed"]),
        .testTarget(name: "DNSResponderTests", dependencies: ["DNSResponder"]),
        .testTarget(name: "NFTablesTests", dependencies: ["NFTables", "Netlink", "MirrorAgent", "MirrorModel"]),
        .testTarget(name: "MirrorAgentTests", dependencies: [
            "MirrorAgent", "MirrorModel", "MirrorFeed", "MirrorKubernetes",
            .product(name: "Yams", package: "Yams"),
        ]),
        // Against kmock (a Kubernetes API emulator, from PyPI) extended by kmock_harness.py.
        .testTarget(
            name: "MirrorKubernetesTests",
            dependencies: [
                "MirrorKubernetes",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["kmock_harness.py"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
