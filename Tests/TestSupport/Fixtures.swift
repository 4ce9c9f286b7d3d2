import FirmwareImage
import Foundation
import Parts
import Testing

/// Where the tests find things: the repository, the real bootloader files, the built binary.
public enum Fixtures {
    /// The seed guide's ATmega32U4 and ATmega32A rules, naming the real bootloader files (firmware directory relative).
    public static let seedRules = """
    [[rule]]
    name = "atmel-dfu"
    match = { part = "atmega32u4" }
    bootloader = "bootloader_atmega32u4_1_0_0.hex"
    sha256 = "9fc1fdb469bf273b5e3b2f4c3f056c2b2d62f1dd069a6d89880c208c4f9ca0ac"
    fuses = { low = 0x5E, high = 0x99, extended = 0xF3 }
    clock = "crystal"
    clock_div8 = true

    [[rule]]
    name = "pro-micro-5v"
    match = { part = "atmega32u4" }
    bootloader = "Caterina-promicro16.hex"
    sha256 = "bd2cffaedb0636d7cb85664800679ad239f00a736c968a5e5a4329ec37af25e7"
    fuses = { low = 0xFF, high = 0xD8, extended = 0xFB }
    clock = "crystal"
    clock_div8 = false

    [[rule]]
    name = "arduino-micro"
    match = { part = "atmega32u4" }
    bootloader = "Caterina-Micro.hex"
    fuses = { low = 0xFF, high = 0xD8, extended = 0xFB }
    clock = "crystal"
    clock_div8 = false
    lock = 0x2F

    [[rule]]
    name = "ps2avrgb"
    match = { part = "atmega32a" }
    bootloader = "bootloader_ps2avrgb_bootloadhid_1.0.1.hex"
    fuses = { low = 0x0F, high = 0xD0 }
    clock = "crystal"
    lock = 0x3C
    """

    /// The repository root (the folder holding Package.swift).
    public static let repositoryRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        fatalError("no Package.swift above \(#filePath)")
    }()

    /// The rules file the package installs as /etc/bootmedic/rules.toml.
    public static var shippedRules: String { repositoryRoot.appendingPathComponent("config/rules.toml").path }

    /// The guide's rules for the real bootloader files of the firmware folder (relative paths).
    public static var guideRules: String { repositoryRoot.appendingPathComponent("config/examples/guide-rules.toml").path }

    /// `../shared/firmware` beside the repository, or `BOOTMEDIC_FIRMWARE_DIR`.
    public static let firmwareDirectory: URL = {
        if let dir = ProcessInfo.processInfo.environment["BOOTMEDIC_FIRMWARE_DIR"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        return repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/firmware")
    }()

    /// Whether the real bootloader files are at hand. A fresh clone with no `../shared/firmware` beside it
    /// skips the tests that read them (and names them); CI always has them.
    public static let hasFirmware = FileManager.default.fileExists(atPath: firmwareDirectory.appendingPathComponent("MANIFEST.md").path)

    /// A real firmware file by name.
    public static func firmware(_ name: String) -> String { firmwareDirectory.appendingPathComponent(name).path }

    /// The real bootloader files and the part each is for.
    public static let bootloaders: [(file: String, part: String)] = [
        ("bootloader_atmega32u4_1_0_0.hex", "atmega32u4"),
        ("Caterina-promicro16.hex", "atmega32u4"),
        ("Caterina-Micro.hex", "atmega32u4"),
        ("bootloader_ps2avrgb_bootloadhid_1.0.1.hex", "atmega32a"),
    ]

    /// Every Intel HEX file in the firmware folder.
    public static var hexFiles: [String] { bootloaders.map(\.file) }

    /// The `bootmedic` binary the tests run (built alongside the tests).
    public static let bootmedicBinary: String = {
        let bundle = Bundle.main.bundleURL
        for candidate in [bundle.appendingPathComponent("bootmedic"), bundle.deletingLastPathComponent().appendingPathComponent("bootmedic")]
            where FileManager.default.isExecutableFile(atPath: candidate.path) {
            return candidate.path
        }
        return repositoryRoot.appendingPathComponent(".build/debug/bootmedic").path
    }()

    /// Makes sure a systemd-journald answers, starting one through `scripts/journald.sh` if none does
    /// (CI has no systemd as PID 1, and may hold the dead sockets of an earlier journald).
    public static func ensureJournald() throws {
        let result = try run("/bin/bash", [repositoryRoot.appendingPathComponent("scripts/journald.sh").path])
        guard result.status == 0 else { throw JournaldUnavailable(reason: result.stderr) }
    }

    /// A fresh temporary folder, removed by the caller.
    public static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bootmedic-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// No journald could be reached or started.
public struct JournaldUnavailable: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { "no journald answers: \(reason)" }
}

/// The outcome of running a command.
public struct CommandResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

/// Runs `executable` with `arguments`, waiting for it to exit.
public func run(_ executable: String, _ arguments: [String], currentDirectory: URL? = nil, stdin: String? = nil) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let currentDirectory { process.currentDirectoryURL = currentDirectory }
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    // Read both pipes before waiting so a chatty child never blocks on a full pipe.
    let group = DispatchGroup()
    nonisolated(unsafe) var errData = Data()
    group.enter()
    DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

/// The AVR part a test names ("atmega32u4").
public func avr(_ name: String) -> AVRPart {
    guard case let .avr(part)? = PartCatalog.part(named: name) else { fatalError("no part \(name)") }
    return part
}

/// Deterministic bytes standing in for whatever a bricked board holds.
public func garbage(_ count: Int, seed: UInt8 = 7) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed) &* 17) }
}

extension Trait where Self == ConditionTrait {
    /// For a test or suite that reads the real bootloader files: skipped, and named in the output, when a
    /// fresh clone has no `../shared/firmware` beside it.
    public static var needsFirmware: Self {
        .enabled(if: Fixtures.hasFirmware, "needs the real bootloader files (../shared/firmware or BOOTMEDIC_FIRMWARE_DIR)")
    }
}

/// An image that stands in for a part no packaged bootloader exists for (or a sketch): seeded bytes over
/// `range`, written as Intel HEX into `dir`.
public func syntheticHex(_ range: Range<UInt32>, in dir: URL) throws -> String {
    var state: UInt32 = range.lowerBound | 1
    let bytes = range.map { _ -> UInt8 in
        state = state &* 1_103_515_245 &+ 12_345
        return UInt8(state >> 24)
    }
    let path = dir.appendingPathComponent("synthetic-\(String(range.lowerBound, radix: 16)).hex").path
    try IntelHex.format(try MemoryImage(bytes: bytes, at: range.lowerBound)).write(toFile: path, atomically: true, encoding: .utf8)
    return path
}
