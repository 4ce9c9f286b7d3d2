// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "bootmedic",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "bootmedic", targets: ["bootmedic"]),
        .library(name: "FirmwareImage", targets: ["FirmwareImage"]),
        .library(name: "Parts", targets: ["Parts"]),
        .library(name: "Rules", targets: ["Rules"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
    ],
    targets: [
        // Thin system-library targets: the C APIs, found through pkg-config.
        .systemLibrary(name: "CLibUSB", pkgConfig: "libusb-1.0", providers: [.apt(["libusb-1.0-0-dev"])]),
        .systemLibrary(name: "CLibUDev", pkgConfig: "libudev", providers: [.apt(["libudev-dev"])]),
        // libsystemd's headers only: the library itself is loaded on first use (Sources/Agent/LibSystemd.swift).
        .systemLibrary(name: "CSystemd", providers: [.apt(["libsystemd-dev"])]),

        .target(name: "BenchModel"),
        .target(name: "DeviceCatalog", dependencies: ["BenchModel"]),
        .target(name: "FirmwareImage", dependencies: ["BenchModel"]),
        .target(name: "Transport", dependencies: ["BenchModel", "CLibUSB"]),
        .target(name: "Parts", dependencies: ["FirmwareImage"]),
        .target(name: "Rules", dependencies: ["BenchModel", "DeviceCatalog", "FirmwareImage", "Parts"]),
        .target(name: "AVRISP", dependencies: ["BenchModel", "Parts", "Transport"]),
        .target(name: "STLink", dependencies: ["DeviceCatalog", "Parts", "Transport"]),
        .target(name: "DeviceTrace", dependencies: ["Transport"]),
        .target(name: "Bootloaders", dependencies: ["BenchModel", "Parts", "Transport"]),
        .target(name: "Programmers", dependencies: ["AVRISP", "DeviceCatalog", "DeviceTrace", "STLink", "Transport"]),
        .target(name: "Simulation", dependencies: ["BenchModel", "Bootloaders", "Parts", "Transport"]),
        .target(name: "Agent", dependencies: ["Bootloaders", "CLibUDev", "CSystemd", "DeviceCatalog", "DeviceTrace", "Parts", "Programmers", "Recovery", "Rules", "Transport"]),
        .target(name: "VirtualBench", dependencies: ["Agent", "Bootloaders", "FirmwareImage", "Parts", "Programmers", "Rules", "Simulation", "Transport"]),
        .target(name: "Recovery", dependencies: ["AVRISP", "BenchModel", "Bootloaders", "FirmwareImage", "Parts", "Programmers", "Rules", "STLink", "Transport"]),
        // The parsers fed arbitrary bytes: run under libFuzzer by bootmedic-fuzz (`make fuzz`), replayed by the tests.
        .target(name: "FuzzTargets", dependencies: ["Agent", "AVRISP", "FirmwareImage", "Parts", "Rules", "Simulation", "STLink", "Transport"]),
        .executableTarget(name: "bootmedic-fuzz", dependencies: ["FuzzTargets"]),
        .executableTarget(
            name: "bootmedic",
            dependencies: [
                "Agent", "AVRISP", "DeviceCatalog", "DeviceTrace", "FirmwareImage", "Parts", "Programmers", "Recovery", "Rules", "Simulation", "STLink",
                "Transport", "VirtualBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // Shared by the test targets: where the real firmware files are, running commands.
        .target(name: "TestSupport", dependencies: ["FirmwareImage", "Parts"], path: "Tests/TestSupport"),

        .testTarget(name: "SystemLibraryTests", dependencies: ["TestSupport", "CLibUSB", "CLibUDev", "CSystemd"],
                    linkerSettings: [.linkedLibrary("systemd")]),
        .testTarget(name: "FirmwareImageTests", dependencies: ["TestSupport", "FirmwareImage"]),
        .testTarget(name: "PartsTests", dependencies: ["TestSupport", "Parts", "FirmwareImage"]),
        .testTarget(name: "RulesTests", dependencies: ["TestSupport", "Rules", "Parts", "FirmwareImage"]),
        .testTarget(name: "SimulationTests", dependencies: ["TestSupport", "Simulation", "AVRISP", "Parts", "Transport"]),
        .testTarget(name: "RecoveryTests", dependencies: ["TestSupport", "Recovery", "Simulation", "AVRISP", "Rules", "Parts", "FirmwareImage", "Transport"]),
        .testTarget(name: "SerialTests", dependencies: ["TestSupport", "AVRISP", "Programmers", "Simulation", "Recovery", "Rules", "Parts", "FirmwareImage", "Transport"]),
        .testTarget(name: "BootloaderTests", dependencies: ["TestSupport", "Bootloaders", "DeviceCatalog", "Simulation", "Recovery", "Rules", "Parts", "FirmwareImage", "Transport"]),
        .testTarget(name: "STM32Tests", dependencies: ["TestSupport", "STLink", "Simulation", "Recovery", "Rules", "Parts", "FirmwareImage"]),
        .testTarget(name: "AgentTests", dependencies: ["TestSupport", "Agent", "Bootloaders", "Programmers", "Transport", "Recovery", "Rules", "Simulation", "Parts", "VirtualBench"]),
        .testTarget(name: "DeviceCatalogTests", dependencies: ["TestSupport", "DeviceCatalog", "Programmers", "Rules", "Simulation", "Transport"]),
        .testTarget(name: "DeviceTraceTests", dependencies: ["TestSupport", "AVRISP", "DeviceTrace", "Parts", "Recovery", "Rules", "Simulation", "Transport"]),
        .testTarget(name: "FuzzTests", dependencies: ["TestSupport", "FuzzTargets", "FirmwareImage"]),
        .testTarget(name: "CLITests", dependencies: ["TestSupport", "bootmedic"]),
    ],
    swiftLanguageModes: [.v6]
)
