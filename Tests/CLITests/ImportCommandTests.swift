import FirmwareImage
import Foundation
import Parts
import TestSupport
import Testing

/// Debian's arduino-core-avr, which `make deps` installs and the package recommends.
let debianBoards = "/usr/share/arduino/hardware/arduino/avr/boards.txt"

/// Rehearses `rule` of `rules` on a factory `part` through `programmer`; the chip's flash and fuses after.
func rehearseFactoryChip(rules: String, rule: String, part: String, programmer: String = "usbasp",
                         firmwareDir: String? = nil) throws -> (result: CommandResult, flash: [UInt8], fuses: [String: Int]) {
    let dir = try Fixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let dump = dir.appendingPathComponent("dump")
    var arguments = ["rehearse", "--rules", rules, "--rule", rule, "--part", part, "--programmer", programmer,
                     "--backup-dir", dir.appendingPathComponent("b").path, "--dump", dump.path]
    if let firmwareDir { arguments += ["--firmware-dir", firmwareDir] }
    let result = try run(Fixtures.bootmedicBinary, arguments)
    let flash = [UInt8]((try? Data(contentsOf: dump.appendingPathComponent("flash.bin"))) ?? Data())
    let fuses = (try? JSONSerialization.jsonObject(with: Data(contentsOf: dump.appendingPathComponent("fuses.json")))) as? [String: Int] ?? [:]
    return (result, flash, fuses)
}

/// The fuses as the rule gives them, on the bits the part implements (the rest read back as anything).
func implemented(_ fuses: [String: Int], part: String) -> [String: Int] {
    let avr = avr(part)
    var out: [String: Int] = [:]
    for (key, value) in fuses {
        if key == "lock" { out[key] = value & Int(avr.lock.implementedMask); continue }
        guard let byte = FuseByte(rawValue: key), let layout = avr.layout(of: byte) else { continue }
        out[key] = value & Int(layout.implementedMask)
    }
    return out
}

@Suite struct ImportCommandTests {
    @Test(.enabled(if: FileManager.default.fileExists(atPath: debianBoards), "needs Debian's arduino-core-avr"))
    func importsDebiansBoardsAndRestoresTheirBootloader() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let output = dir.appendingPathComponent("arduino.toml").path
        let imported = try run(Fixtures.bootmedicBinary, ["rules", "import", debianBoards, "-o", output])
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stderr.hasPrefix("16 rules from \(debianBoards) written to \(output); 22 left out:\n"))
        // Debian 12 rebuilds optiboot 533 bytes long: past the 512-byte boot section, refused with the reason.
        #expect(imported.stderr.contains("  uno (Arduino UNO): its bootloader file cannot be used: /usr/share/arduino/hardware/arduino/avr/bootloaders/optiboot/optiboot_atmega328.hex:35:10: address 0x7FFE was already given 0x90 by an earlier record; this one says 0x04; it is optiboot for the ATmega328P (Uno, Nano), from an Arduino IDE's avr core"))
        let check = try run(Fixtures.bootmedicBinary, ["rules", "check", output])
        #expect(check.status == 0, "\(check.stdout)")
        #expect(check.stdout.hasSuffix("\(output): 16 rules, 0 errors, 12 warnings\n"))

        let rehearsed = try rehearseFactoryChip(rules: output, rule: "nano-atmega328old", part: "atmega328p")
        #expect(rehearsed.result.status == 0, "\(rehearsed.result.stderr)")
        let image = try FirmwareFile(path: "/usr/share/arduino/hardware/arduino/avr/bootloaders/atmega/ATmegaBOOT_168_atmega328.hex").image
        #expect(rehearsed.flash == image.bytes(in: 0..<0x8000))
        #expect(implemented(rehearsed.fuses, part: "atmega328p") == implemented(["low": 0xFF, "high": 0xDA, "extended": 0xFD, "lock": 0x0F], part: "atmega328p"))
    }

    /// The Mega 2560's stk500v2 bootloader sits at 0x3E000, above 128 KiB: every programmer that can send
    /// Load Extended Address writes, verifies and backs it up there; USBtinyISP is refused before erasing.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: debianBoards), "needs Debian's arduino-core-avr"),
          arguments: ["usbasp", "stk500v1", "avrisp", "buspirate", "usbtiny"])
    func theMega2560BootloaderGoesAbove128KiB(_ programmer: String) throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let rules = dir.appendingPathComponent("arduino.toml").path
        #expect(try run(Fixtures.bootmedicBinary, ["rules", "import", debianBoards, "-o", rules]).status == 0)
        let rehearsed = try rehearseFactoryChip(rules: rules, rule: "mega-atmega2560", part: "atmega2560", programmer: programmer)
        if programmer == "usbtiny" {
            #expect(rehearsed.result.status != 0)
            #expect(rehearsed.result.stderr.contains("refused before erasing anything: USBtinyISP addresses only the first 64 KiB of flash, and ATmega2560 has 256 KiB"))
            #expect(rehearsed.fuses["low"] == 0x62, "the factory chip is untouched")
            #expect(rehearsed.flash.allSatisfy { $0 == 0xFF })
            return
        }
        #expect(rehearsed.result.status == 0, "\(rehearsed.result.stderr)")
        let image = try FirmwareFile(path: "/usr/share/arduino/hardware/arduino/avr/bootloaders/stk500v2/stk500boot_v2_mega2560.hex").image
        #expect(image.span?.lowerBound == 0x3E000)
        #expect(rehearsed.flash == image.bytes(in: 0..<0x40000))
        #expect(implemented(rehearsed.fuses, part: "atmega2560") == implemented(["low": 0xFF, "high": 0xD8, "extended": 0xFD, "lock": 0x0F], part: "atmega2560"))
        #expect(rehearsed.result.stdout.contains("verify-flash"))
    }

    /// An Uno as an Arduino IDE core describes it, with a made-up 512-byte image where optiboot goes.
    @Test func theImportedUnoRuleRestoresAFactoryATmega328P() throws {
        let folder = try BoardsFolder(sampleBoards)
        defer { folder.remove() }
        let output = folder.dir.appendingPathComponent("arduino.toml").path
        let imported = try run(Fixtures.bootmedicBinary, ["rules", "import", folder.boardsTxt, "--board", "uno", "-o", output])
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stderr == "1 rule from \(folder.boardsTxt) written to \(output)\n")
        #expect(try run(Fixtures.bootmedicBinary, ["rules", "check", output]).status == 0)
        let rehearsed = try rehearseFactoryChip(rules: output, rule: "uno", part: "atmega328p")
        #expect(rehearsed.result.status == 0, "\(rehearsed.result.stderr)")
        let image = try FirmwareFile(path: folder.dir.appendingPathComponent("bootloaders/optiboot/optiboot_atmega328p.hex").path).image
        #expect(rehearsed.flash == image.bytes(in: 0..<0x8000))
        #expect(implemented(rehearsed.fuses, part: "atmega328p") == implemented(["low": 0xFF, "high": 0xDE, "extended": 0xFD, "lock": 0x0F], part: "atmega328p"))
    }

    @Test func unknownBoardsAndMissingFilesAreRefused() throws {
        let folder = try BoardsFolder(sampleBoards)
        defer { folder.remove() }
        let unknown = try run(Fixtures.bootmedicBinary, ["rules", "import", folder.boardsTxt, "--board", "unoo"])
        #expect(unknown.status == 1)
        #expect(unknown.stderr == "bootmedic: error: \(folder.boardsTxt) has no board 'unoo' (did you mean 'uno'?)\n")
        let none = try run(Fixtures.bootmedicBinary, ["rules", "import", folder.boardsTxt, "--board", "leo"])
        #expect(none.status == 1)
        #expect(none.stderr.hasSuffix("bootmedic: error: no board of \(folder.boardsTxt) could be made a rule; nothing written\n"))
        let missing = try run(Fixtures.bootmedicBinary, ["rules", "import", "/nonexistent/boards.txt"])
        #expect(missing.stderr == "bootmedic: error: /nonexistent/boards.txt: no such file\n")
    }
}

/// The fuse lint refuses what can lock ISP out, and only that (issue 13).
@Suite struct GuideFuseTests {
    /// The guide's Pro Micro 3V3 row as its table prints it: no `clock` line.
    static let proMicro3V3 = """
    [[rule]]
    name = "pro-micro-3v3"
    match = { part = "atmega32u4" }
    bootloader = "Caterina-promicro16.hex"
    fuses = { low = 0xFF, high = 0xD8, extended = 0xFE }
    """

    @Test(.enabled(if: Fixtures.hasFirmware, "needs the real bootloader files"),
          arguments: ["usbasp", "usbtiny", "stk500v1", "avrisp", "buspirate"])
    func theGuideRowRestoresAFactoryATmega32U4(_ programmer: String) throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let rules = dir.appendingPathComponent("rules.toml").path
        try Self.proMicro3V3.write(toFile: rules, atomically: true, encoding: .utf8)
        let rehearsed = try rehearseFactoryChip(rules: rules, rule: "pro-micro-3v3", part: "atmega32u4", programmer: programmer,
                                                firmwareDir: Fixtures.firmwareDirectory.path)
        #expect(rehearsed.result.status == 0, "\(rehearsed.result.stderr)")
        #expect(rehearsed.result.stdout.contains("low fuse 0xFF clears CKDIV8"), "the divider change is told, not refused")
        let image = try FirmwareFile(path: Fixtures.firmware("Caterina-promicro16.hex")).image
        #expect(rehearsed.flash == image.bytes(in: 0..<0x8000))
        #expect(implemented(rehearsed.fuses, part: "atmega32u4") == implemented(["low": 0xFF, "high": 0xD8, "extended": 0xFE, "lock": 0xFF], part: "atmega32u4"))
    }

    /// BootloadHID's fuses on a factory ATmega32A (internal RC → crystal): refused without `clock`, before
    /// anything is erased, with the line to add; restored once the rule has it.
    @Test func anOscillatorChangeWithoutClockIsRefusedAndTheSuggestedLineIsEnough() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try IntelHex.format(MemoryImage(bytes: garbage(2448), at: 0x7000)).write(toFile: dir.path + "/hid.hex", atomically: true, encoding: .utf8)
        let rule = "[[rule]]\nname = \"hid\"\nmatch = { part = \"atmega32a\" }\nbootloader = \"hid.hex\"\nfuses = { low = 0x0F, high = 0xD0 }\n"
        let rules = dir.appendingPathComponent("rules.toml").path
        try rule.write(toFile: rules, atomically: true, encoding: .utf8)
        let refused = try rehearseFactoryChip(rules: rules, rule: "hid", part: "atmega32a")
        #expect(refused.result.status == 7)
        #expect(refused.result.stderr.contains("but the chip's current low fuse 0xE1 selects calibrated internal RC oscillator; if the board has a crystal or resonator, declare it in the rule with clock = \"crystal\""), "\(refused.result.stderr)")
        #expect(!refused.result.stderr.contains("allow_unsafe_fuses"))
        #expect(refused.flash.allSatisfy { $0 == 0xFF }, "nothing was written")

        try (rule + "clock = \"crystal\"\n").write(toFile: rules, atomically: true, encoding: .utf8)
        let restored = try rehearseFactoryChip(rules: rules, rule: "hid", part: "atmega32a")
        #expect(restored.result.status == 0, "\(restored.result.stderr)")
        #expect(implemented(restored.fuses, part: "atmega32a") == implemented(["low": 0x0F, "high": 0xD0, "lock": 0x3F], part: "atmega32a"))
    }
}
