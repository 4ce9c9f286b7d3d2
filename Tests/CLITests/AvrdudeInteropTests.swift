import FirmwareImage
import Foundation
import TestSupport
import Testing

/// `bootmedic simulate` running in the background: its pseudo-terminal path, and its state when done.
final class SimulatorProcess {
    let process = Process()
    let input = Pipe()
    let output = Pipe()
    let state: URL
    private(set) var path = ""

    convenience init(_ programmer: String, part: String, state: URL) throws {
        try self.init(["--programmer", programmer, "--part", part], state: state)
    }

    /// `bootmedic simulate ARGUMENTS --state STATE`.
    init(_ arguments: [String], state: URL) throws {
        self.state = state
        process.executableURL = URL(fileURLWithPath: Fixtures.bootmedicBinary)
        process.arguments = ["simulate"] + arguments + ["--state", state.path]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        var line = Data()
        while !line.contains(0x0A) {
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { break }
            line += chunk
        }
        path = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Closes standard input, as the contract says, and waits for the state to be written.
    func finish() throws {
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

func avrdude(_ arguments: [String]) throws -> CommandResult {
    try run("/usr/bin/avrdude", arguments)
}

@Suite(.serialized) struct AvrdudeInteropTests {
    static let cases: [(programmer: [String], kind: String, part: String, avrPart: String, file: String, fuses: [(String, Int, Int)])] = [
        (["-c", "stk500v1", "-b", "19200"], "stk500v1", "atmega32u4", "m32u4", "Caterina-promicro16.hex", [("lfuse", 0xFF, 0xFF), ("hfuse", 0xD8, 0xD8), ("efuse", 0xCB, 0xCB)]),
        (["-c", "avrisp", "-b", "19200"], "avrisp", "atmega32a", "m32a", "bootloader_ps2avrgb_bootloadhid_1.0.1.hex", [("lfuse", 0x0F, 0x0F), ("hfuse", 0xD0, 0xD0)]),
        (["-c", "buspirate"], "buspirate", "atmega32u4", "m32u4", "bootloader_atmega32u4_1_0_0.hex", [("lfuse", 0x5E, 0x5E), ("hfuse", 0xD9, 0xD9), ("efuse", 0xF3, 0xC3)]),
        // The extended fuse's upper four bits do not exist on the ATmega32U4: this silicon reads them as 1100.
    ]

    static let debianBootloaders = "/usr/share/arduino/hardware/arduino/avr/bootloaders"

    /// The parts beyond the first eight: the Mega 2560 above 128 KiB (avrdude sends Load Extended Address
    /// through the sketch's universal command), the Uno's ATmega328P and its ATmega16U2, a Digispark's ATtiny85.
    /// Files: Debian's arduino-core-avr where it has one, else a seeded image where the bootloader goes.
    static let moreParts: [(programmer: [String], kind: String, part: String, avrPart: String, signature: String, file: String?, range: Range<UInt32>, fuses: [(String, Int, Int)])] = [
        (["-c", "stk500v1", "-b", "19200"], "stk500v1", "atmega2560", "m2560", "1e9801", "stk500v2/stk500boot_v2_mega2560.hex", 0x3E000..<0x40000,
         [("lfuse", 0xFF, 0xFF), ("hfuse", 0xD8, 0xD8), ("efuse", 0xFD, 0xC5)]),
        (["-c", "buspirate"], "buspirate", "atmega2560", "m2560", "1e9801", "stk500v2/stk500boot_v2_mega2560.hex", 0x3E000..<0x40000,
         [("lfuse", 0xFF, 0xFF), ("hfuse", 0xD8, 0xD8)]),
        (["-c", "avrisp", "-b", "19200"], "avrisp", "atmega328p", "m328p", "1e950f", "atmega/ATmegaBOOT_168_atmega328.hex", 0x7800..<0x8000,
         [("lfuse", 0xFF, 0xFF), ("hfuse", 0xDA, 0xDA), ("efuse", 0xFD, 0xC5)]),
        (["-c", "buspirate"], "buspirate", "attiny85", "t85", "1e930b", nil, 0x1A00..<0x2000,
         [("lfuse", 0xE1, 0xE1), ("hfuse", 0xDD, 0xDD), ("efuse", 0xFE, 0xC0)]),
        (["-c", "stk500v1", "-b", "19200"], "stk500v1", "atmega16u2", "m16u2", "1e9489", nil, 0x3000..<0x4000,
         [("lfuse", 0xFF, 0xFF), ("hfuse", 0xD9, 0xD9), ("efuse", 0xF4, 0xF4)]),
    ]

    @Test(arguments: moreParts)
    func avrdudeProgramsTheBenchsOtherParts(_ c: (programmer: [String], kind: String, part: String, avrPart: String, signature: String, file: String?, range: Range<UInt32>, fuses: [(String, Int, Int)])) throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = try c.file.map { "\(Self.debianBootloaders)/\($0)" } ?? syntheticHex(c.range, in: dir)
        guard FileManager.default.fileExists(atPath: file) else {
            Issue.record("\(file) missing: run scripts/install-deps.sh (arduino-core-avr)")
            return
        }
        let simulator = try SimulatorProcess(c.kind, part: c.part, state: dir.appendingPathComponent("state"))
        let base = c.programmer + ["-P", simulator.path, "-p", c.avrPart]
        let write = try avrdude(base + ["-U", "flash:w:\(file):i"] + c.fuses.flatMap { ["-U", "\($0.0):w:0x\(String($0.1, radix: 16)):m"] })
        #expect(write.status == 0, "\(write.stderr)")
        #expect(write.stderr.lowercased().contains("device signature = 0x\(c.signature)"), "\(write.stderr)")
        #expect(write.stderr.contains("bytes of flash verified"), "\(write.stderr)")
        let read = try avrdude(base + c.fuses.flatMap { ["-U", "\($0.0):r:-:h"] })
        #expect(read.status == 0, "\(read.stderr)")
        #expect(read.stdout.split(separator: "\n").map(String.init) == c.fuses.map { "0x" + String($0.2, radix: 16) })
        try simulator.finish()
        let flash = [UInt8](try Data(contentsOf: simulator.state.appendingPathComponent("flash.bin")))
        let image = try FirmwareFile(path: file).image
        #expect(image.span.map { UInt32($0.lowerBound) } == c.range.lowerBound)
        #expect(flash == image.bytes(in: 0..<UInt32(flash.count)), "the chip holds exactly what avrdude wrote")
    }

    @Test(.needsFirmware, arguments: cases)
    func avrdudeWritesVerifiesAndReadsBackThroughOurSimulator(_ c: (programmer: [String], kind: String, part: String, avrPart: String, file: String, fuses: [(String, Int, Int)])) throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let simulator = try SimulatorProcess(c.kind, part: c.part, state: dir.appendingPathComponent("state"))
        #expect(simulator.path.hasPrefix("/dev/pts/"))
        let base = c.programmer + ["-P", simulator.path, "-p", c.avrPart]

        let write = try avrdude(base + ["-U", "flash:w:\(Fixtures.firmware(c.file)):i"] + c.fuses.flatMap { ["-U", "\($0.0):w:0x\(String($0.1, radix: 16)):m"] })
        #expect(write.status == 0, "\(write.stderr)")
        #expect(write.stderr.lowercased().contains("device signature = 0x\(c.part == "atmega32a" ? "1e9502" : "1e9587")"), "\(write.stderr)")
        #expect(write.stderr.contains("bytes of flash verified"))
        for (fuse, _, _) in c.fuses { #expect(write.stderr.contains("1 byte of \(fuse) verified"), "\(fuse)") }

        let read = try avrdude(base + c.fuses.flatMap { ["-U", "\($0.0):r:-:h"] })
        #expect(read.status == 0, "\(read.stderr)")
        #expect(read.stdout.split(separator: "\n").map(String.init) == c.fuses.map { "0x" + String($0.2, radix: 16) })

        try simulator.finish()
        let flash = try Data(contentsOf: simulator.state.appendingPathComponent("flash.bin"))
        let image = try FirmwareFile(path: Fixtures.firmware(c.file)).image
        #expect([UInt8](flash) == image.bytes(in: 0..<UInt32(flash.count)), "the chip holds exactly what avrdude wrote")
        let fuses = try JSONSerialization.jsonObject(with: Data(contentsOf: simulator.state.appendingPathComponent("fuses.json"))) as? [String: Int]
        let names = ["lfuse": "low", "hfuse": "high", "efuse": "extended"]
        for (fuse, _, readBack) in c.fuses { #expect(fuses?[names[fuse]!] == readBack, "\(fuse)") }
    }
}
