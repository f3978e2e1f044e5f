// swift-tools-version:6.2
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
        // renameat2(RENAME_NOREPLACE), which Swift's Glibc module does not export (the shm calls are Swift over Glibc).
        .target(name: "CRenameNoReplace"),

        // epoll, eventfd and accept4, which Swift's Glibc module does not export.
        .target(name: "CSyscalls"),

        // HTTP/1.1 as pure values: request parser, response serializer, router, messages. No sockets, no
        // Dispatch, no system calls; the fuzzer (scripts/fuzz-http) and HTTP1Tests link it alone.
        .target(name: "HTTP1"),

        // The HTTP/1.1 server on POSIX sockets and Dispatch, built on HTTP1. Knows nothing of Aerospike.
        .target(name: "HTTPCore", dependencies: ["HTTP1", "CSyscalls"]),

        // System V shared memory, segment and file formats, backup and restore. Knows nothing of HTTP.
        .target(
            name: "ShmEngine",
            dependencies: ["CZlib", "CISAL", "CRenameNoReplace"]
        ),

        // Aerospike-shaped demo segments (marked as synthetic) for `asmtd demo`, the benchmark and the tests.
        .target(name: "ShmSynthetic", dependencies: ["ShmEngine"]),

        // The asmtd executable: config, job queue, routes, metrics, local CLI.
        .executableTarget(
            name: "Server",
            dependencies: [
                "HTTP1",
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
        .executableTarget(name: "HTTPBench", dependencies: ["HTTP1", "HTTPCore"]),

        // What the test targets share: one HTTP client, temporary directories, blocking work off the cooperative
        // pool, an independent shm reader, segment sets, bounded waits. Linked into the tests only.
        .target(name: "TestSupport", dependencies: ["ShmEngine", "ShmSynthetic"], path: "Tests/TestSupport"),
        // The request vectors of shared/http-server.md's checklist, fed to the parser (HTTP1Tests) and over
        // the wire (HTTPCoreTests).
        .target(name: "HTTPVectors", dependencies: ["HTTP1"], path: "Tests/HTTPVectors"),

        .testTarget(name: "ShmEngineTests", dependencies: ["ShmEngine", "ShmSynthetic", "TestSupport"]),
        .testTarget(name: "HTTP1Tests", dependencies: ["HTTP1", "HTTPVectors"]),
        .testTarget(name: "HTTPCoreTests", dependencies: ["HTTPCore", "HTTP1", "HTTPVectors", "TestSupport"]),
        .testTarget(
            name: "ServerTests",
            dependencies: ["Server", "HTTP1", "HTTPCore", "ShmEngine", "ShmSynthetic", "TestSupport"]),
    ]
)

// Our own targets build free of warnings: any warning of theirs is an error. (Warning settings never apply to
// the targets of dependencies, whose warnings stay warnings.)
for target in package.targets where target.type != .system && target.type != .plugin {
    target.swiftSettings = (target.swiftSettings ?? []) + [.treatAllWarnings(as: .error)]
    target.cSettings = (target.cSettings ?? []) + [.treatAllWarnings(as: .error)]
}
