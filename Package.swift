// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "asmtd",
    products: [
        .executable(name: "asmtd", targets: ["Server"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // System libraries, each behind a small module map.
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .systemLibrary(
            name: "CYaml",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        // Intel ISA-L: a C shim that loads libisal at run time when present, so that
        // the build never depends on it and zlib remains the fallback.
        .target(
            name: "CISAL",
            linkerSettings: [.linkedLibrary("dl")]
        ),

        // epoll, eventfd and accept4, which Swift's Glibc module does not export.
        .target(name: "CSyscalls"),

        // HTTP/1.1 server on POSIX sockets and Dispatch. Knows nothing of Aerospike.
        .target(name: "HTTPCore", dependencies: ["CSyscalls"]),

        // System V shared memory, segment and file formats, backup and restore. Knows nothing of HTTP.
        .target(
            name: "ShmEngine",
            dependencies: ["CZlib", "CISAL"]
        ),

        // Aerospike-shaped demo segments (marked as synthetic) for `asmtd demo`, the benchmark and the tests.
        .target(name: "ShmSynthetic", dependencies: ["ShmEngine"]),

        // The asmtd executable: config, job queue, routes, metrics, local CLI.
        .executableTarget(
            name: "Server",
            dependencies: [
                "HTTPCore",
                "ShmEngine",
                "ShmSynthetic",
                "CYaml",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            plugins: ["EmbedOpenAPI"]
        ),

        // Build-time: openapi.yaml becomes `OpenAPIDocument.text` in Server (served at GET /openapi.yaml).
        .executableTarget(name: "EmbedText"),
        .plugin(name: "EmbedOpenAPI", capability: .buildTool(), dependencies: ["EmbedText"]),

        // A trivial-route server used only by scripts/bench-http.
        .executableTarget(name: "HTTPBench", dependencies: ["HTTPCore"]),

        .testTarget(name: "ShmEngineTests", dependencies: ["ShmEngine", "ShmSynthetic"]),
        .testTarget(name: "HTTPCoreTests", dependencies: ["HTTPCore"]),
        .testTarget(name: "ServerTests", dependencies: ["Server", "HTTPCore", "ShmEngine", "ShmSynthetic"]),
    ]
)
