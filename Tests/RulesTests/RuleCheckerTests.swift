import FirmwareImage
import Foundation
import Parts
import Rules
import TestSupport
import Testing

/// Writes `text` as a rules file in a fresh folder and checks it against the real firmware files.
/// `files` are written beside it; "@/" in `text` stands for that folder.
func check(_ text: String, files: [String: String] = [:]) throws -> [String] {
    let dir = try Fixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    for (name, contents) in files { try contents.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8) }
    let path = dir.appendingPathComponent("rules.toml").path
    try text.replacingOccurrences(of: "@/", with: dir.path + "/").write(toFile: path, atomically: true, encoding: .utf8)
    let fw = Fixtures.firmwareDirectory.path
    return RuleChecker.check(path: path, firmwareDirectory: fw).1.map {
        $0.description.replacingOccurrences(of: dir.path + "/", with: "").replacingOccurrences(of: fw + "/", with: "")
    }
}

@Suite struct RuleCheckerTests {
    @Test(.needsFirmware) func theGuideRulesCheckClean() throws {
        let (set, problems) = RuleChecker.check(path: Fixtures.guideRules, firmwareDirectory: Fixtures.firmwareDirectory.path)
        #expect(set?.rules.map(\.name) == ["atmel-dfu-atmega32u4", "pro-micro-5v", "arduino-micro", "ps2avrgb-bootloadhid", "bluepill"])
        #expect(problems.filter { $0.severity == .error }.isEmpty, "\(problems)")
        #expect(problems.filter { $0.severity == .warning }.map(\.rule) == ["pro-micro-5v", "arduino-micro"])
    }

    @Test(.needsFirmware) func everyRealBootloaderLoadsAndPassesWithItsSeedFuses() throws {
        let text = """
        [[rule]]
        name = "dfu"
        match = { part = "atmega32u4" }
        bootloader = "bootloader_atmega32u4_1_0_0.hex"
        sha256 = "9fc1fdb469bf273b5e3b2f4c3f056c2b2d62f1dd069a6d89880c208c4f9ca0ac"
        fuses = { low = 0x5E, high = 0xD9, extended = 0xF3 }
        clock = "crystal"
        clock_div8 = true

        [[rule]]
        name = "hid"
        match = { part = "atmega32a" }
        bootloader = "bootloader_ps2avrgb_bootloadhid_1.0.1.hex"
        fuses = { low = 0x0F, high = 0xD0 }
        clock = "crystal"
        lock = 0x2F
        """
        #expect(try check(text) == [
            "rules.toml:6:9: note: [dfu] reset starts the application at 0x0000; the bootloader runs when HWB is held low at reset (HWBE programmed), or when the application space is empty",
            "rules.toml:13:14: warning: [hid] the bootloader is not pinned: add sha256 = \"…\" so a changed file is refused",
            "rules.toml:13:14: note: [hid] lock 0x2F: bits above LB/BLB do not exist on ATmega32A and read back as anything",
        ])
    }

    @Test(.needsFirmware) func refusesAChangedFile() throws {
        let text = ruleText().replacingOccurrences(of: caterinaSHA, with: String(repeating: "0", count: 64))
        #expect(try check(text) == ["rules.toml:4:14: error: [r] Caterina-promicro16.hex: sha256 is \(caterinaSHA), but the rule pins \(String(repeating: "0", count: 64)); refusing a changed file"])
    }

    @Test func reportsMissingAndMalformedFirmware() throws {
        let missing = ruleText().replacingOccurrences(of: "\"Caterina-promicro16.hex\"", with: "\"/nonexistent/boot.hex\"")
        #expect(try check(missing) == ["rules.toml:4:14: error: [r] /nonexistent/boot.hex: no such file; the rule pins sha256 \(caterinaSHA), which is Caterina for the SparkFun Pro Micro 5V/16MHz, from sparkfun/Arduino_Boards on GitHub, sparkfun/avr/bootloaders/caterina/ (or SparkFun's board package in an Arduino IDE)"])
        let unpinned = "[[rule]]\nname = \"r\"\nmatch = { part = \"atmega32u4\" }\nbootloader = \"/nonexistent/Caterina-promicro8.hex\"\n"
        #expect(try check(unpinned).contains("rules.toml:4:14: error: [r] /nonexistent/Caterina-promicro8.hex: no such file; a file of this name is Caterina for the SparkFun Pro Micro 3V3/8MHz, from sparkfun/Arduino_Boards on GitHub, sparkfun/avr/bootloaders/caterina/ (or SparkFun's board package in an Arduino IDE)"))
        let unknown = "[[rule]]\nname = \"r\"\nmatch = { part = \"atmega32u4\" }\nbootloader = \"/nonexistent/boot.hex\"\n"
        #expect(try check(unknown).contains("rules.toml:4:14: error: [r] /nonexistent/boot.hex: no such file"))
        // A missing file is missing whatever its name says about its format.
        #expect(try check(unknown.replacingOccurrences(of: "boot.hex", with: "boot")).contains("rules.toml:4:14: error: [r] /nonexistent/boot: no such file"))

        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("bad.hex").path
        try ":0100000011EE\n:0100010022DE\n:00000001FF\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let malformed = ruleText().replacingOccurrences(of: "\"Caterina-promicro16.hex\"", with: "\"\(bad)\"")
            .replacingOccurrences(of: "sha256 = \"\(caterinaSHA)\"\n", with: "")
        let found = try check(malformed)
        #expect(found.contains("rules.toml:4:14: error: [r] \(bad):2:12: checksum is 0xDE but the record's bytes need 0xDC"), "\(found)")
    }

    @Test func refusesRawBinariesForAVR() throws {
        let text = ruleText().replacingOccurrences(of: "\"Caterina-promicro16.hex\"", with: "\"generic_boot20_pc13.bin\"")
            .replacingOccurrences(of: "sha256 = \"\(caterinaSHA)\"\n", with: "")
        #expect(try check(text).last == "rules.toml:4:14: error: [r] generic_boot20_pc13.bin: a raw binary carries no address; give AVR bootloaders as Intel HEX")
    }

    @Test func refusesAProgrammerThatCannotAddressThePart() throws {
        let boot = IntelHex.format(try MemoryImage(bytes: Array(repeating: 0x0C, count: 2048), at: 0x1E000))
        let text = """
        [[rule]]
        name = "teensypp"
        match = { part = "at90usb1286", programmer = "usbtiny" }
        bootloader = "@/boot.hex"
        fuses = { low = 0x5E, high = 0x99, extended = 0xF3 }
        clock = "crystal"
        clock_div8 = true
        """
        let found = try check(text, files: ["boot.hex": boot])
        #expect(found.contains("rules.toml:4:14: error: [teensypp] USBtinyISP addresses only the first 64 KiB of flash, and AT90USB1286 has 128 KiB: it would write the bootloader to the wrong place and fail verification; use a USBasp, an Arduino as ISP or a Bus Pirate"), "\(found)")
    }

    @Test(.needsFirmware) func refusesUnsafeFusesUnlessAllowed() throws {
        let unsafe = ruleText().replacingOccurrences(of: "high = 0xD8", with: "high = 0xF8")
        #expect(try check(unsafe) == ["rules.toml:6:9: error: [r] high fuse 0xF8 leaves SPIEN unprogrammed: ISP programming would be disabled and only a high-voltage programmer could reach the chip again; set allow_unsafe_fuses = true in the rule if that is really meant"])
        let allowed = try check(unsafe + "\nallow_unsafe_fuses = true")
        #expect(allowed == ["rules.toml:6:9: warning: [r] high fuse 0xF8 leaves SPIEN unprogrammed: ISP programming would be disabled and only a high-voltage programmer could reach the chip again (allowed by allow_unsafe_fuses)"])
    }

    @Test(.needsFirmware) func refusesABootloaderTheFusesDoNotReach() throws {
        let text = ruleText().replacingOccurrences(of: "high = 0xD8", with: "high = 0xDA")
        #expect(try check(text) == ["rules.toml:4:14: error: [r] the bootloader starts at 0x7000, below the boot section at 0x7800 that BOOTSZ=01 selects: reset would land in its middle; BOOTSZ=00 (4096 bytes at 0x7000) would match"])
    }

    @Test(.needsFirmware) func mergesAnApplicationAndRefusesOverlap() throws {
        let app = IntelHex.format(try MemoryImage(bytes: Array(repeating: 0x11, count: 0x7010), at: 0))
        let text = ruleText("application = \"@/app.hex\"")
        #expect(try check(text, files: ["app.hex": app]) == ["rules.toml:9:15: error: [r] cannot merge app.hex with Caterina-promicro16.hex: the images overlap at 0x7000–0x700F (16 bytes)"])
        let fitting = IntelHex.format(try MemoryImage(bytes: Array(repeating: 0x11, count: 0x6000), at: 0))
        #expect(try check(text, files: ["app.hex": fitting]).isEmpty)
    }

    @Test(.needsFirmware) func checksSTM32Rules() throws {
        let text = """
        [[rule]]
        name = "bluepill"
        match = { part = "stm32f103", programmer = "usbasp" }
        bootloader = "generic_boot20_pc13.bin"
        sha256 = "8738933a44363f2a3597c7bd6e13afb892b2a4ed304372c31e758745b23b903c"
        fuses = { low = 0xFF }
        allow_unlock = true
        """
        #expect(try check(text) == [
            "rules.toml:4:14: error: [bluepill] USBasp is an AVR ISP programmer; STM32 chips need an ST-Link",
            "rules.toml:4:14: error: [bluepill] fuses are AVR settings; an STM32 has option bytes instead",
        ])
    }

    @Test func aRuleMustNameItsPart() throws {
        let text = ruleText().replacingOccurrences(of: "{ part = \"atmega32u4\" }", with: "{ programmer = \"usbasp\" }")
        #expect(try check(text) == ["rules.toml:1:1: error: [r] the rule names no part (match.part, match.signature or match.chip_id), so its image cannot be checked"])
    }
}
