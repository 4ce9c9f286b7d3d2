import FirmwareImage
import Foundation
import TestSupport
import Testing

let config = Fixtures.guideRules

func rehearse(_ arguments: [String], dump: URL? = nil, backups: URL) throws -> CommandResult {
    var args = ["rehearse", "--rules", config, "--firmware-dir", Fixtures.firmwareDirectory.path, "--backup-dir", backups.path] + arguments
    if let dump { args += ["--dump", dump.path] }
    return try run(Fixtures.bootmedicBinary, args)
}

@Suite struct RehearseCommandTests {
    static let restores: [(rule: String, part: String, file: String, fuses: [String: Int])] = [
        ("atmel-dfu-atmega32u4", "atmega32u4", "bootloader_atmega32u4_1_0_0.hex", ["low": 0x5E, "high": 0x99, "extended": 0xC3, "lock": 0xFF]),
        ("pro-micro-5v", "atmega32u4", "Caterina-promicro16.hex", ["low": 0xFF, "high": 0xD8, "extended": 0xCB, "lock": 0xFF]),
        ("arduino-micro", "atmega32u4", "Caterina-Micro.hex", ["low": 0xFF, "high": 0xD8, "extended": 0xCB, "lock": 0xFF]),
        ("ps2avrgb-bootloadhid", "atmega32a", "bootloader_ps2avrgb_bootloadhid_1.0.1.hex", ["low": 0x0F, "high": 0xD0, "lock": 0xFF]),
    ]

    @Test(.needsFirmware, arguments: restores, ["usbasp", "usbtiny"])
    func dumpsTheRestoredChip(_ r: (rule: String, part: String, file: String, fuses: [String: Int]), _ programmer: String) throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let dump = dir.appendingPathComponent("dump")
        let result = try rehearse(["--programmer", programmer, "--part", r.part, "--rule", r.rule], dump: dump, backups: dir.appendingPathComponent("backups"))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("restored: "))
        let flash = try Data(contentsOf: dump.appendingPathComponent("flash.bin"))
        let image = try FirmwareFile(path: Fixtures.firmware(r.file)).image
        #expect([UInt8](flash) == image.bytes(in: 0..<UInt32(flash.count)))
        #expect(flash.count == (r.part == "atmega32a" ? 32768 : 32768))
        let fuses = try JSONSerialization.jsonObject(with: Data(contentsOf: dump.appendingPathComponent("fuses.json"))) as? [String: Int]
        #expect(fuses == r.fuses)
        #expect(try Data(contentsOf: dump.appendingPathComponent("eeprom.bin")).count == 1024)
    }

    @Test(.needsFirmware) func reportsAsJSON() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try rehearse(["--programmer", "usbasp", "--part", "atmega32u4", "--rule", "pro-micro-5v", "--json"], backups: dir)
        #expect(result.status == 0)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(report["outcome"] as? String == "restored")
        #expect(report["part"] as? String == "atmega32u4")
        #expect(report["signature"] as? String == "0x1E9587")
        #expect((report["steps"] as? [[String: Any]])?.map { $0["step"] as? String } == [
            "connect", "identify", "select-rule", "check", "health-check", "raise-clock", "backup", "erase", "write-flash",
            "verify-flash", "restore-eeprom", "write-fuses", "verify-fuses", "release"])
        #expect((report["backup"] as? String)?.hasPrefix(dir.path) == true)
    }

    @Test(.needsFirmware) func serialStepsAreTimedOnTheSimulatedChip() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try rehearse(["--programmer", "stk500v1", "--part", "atmega32u4", "--rule", "pro-micro-5v", "--json"], backups: dir)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let steps = try #require(report["steps"] as? [[String: Any]])
        let seconds = Dictionary(uniqueKeysWithValues: steps.map { ($0["step"] as? String ?? "", $0["seconds"] as? Double ?? 0) })
        let simulated = try #require((report["simulation"] as? [String: Any])?["seconds"] as? Double)
        // 4 KiB over 19200 baud plus 32 page commits of 30 ms: seconds of line time, not the pty's milliseconds.
        #expect((seconds["write-flash"] ?? 0) > 3)
        #expect(abs(steps.reduce(0) { $0 + ($1["seconds"] as? Double ?? 0) } - simulated) < 0.5)
    }

    static let faults: [(fault: String, status: Int32, message: String)] = [
        ("no-target", 3, "bootmedic: error: no target answers: programming enable got no echo at any SCK down to 4 kHz"),
        ("wrong-part", 6, "bootmedic: error: the chip's signature 0x1E9502 is ATmega32A, but rule 'pro-micro-5v' is for ATmega32U4; nothing was written"),
        ("target-vanishes", 3, "bootmedic: error: the target stopped answering while verifying flash (its signature now reads 0xFFFFFF)"),
        // After the erase the whole signature is read again, not only the byte programming enable echoes.
        ("garbled-after-erase", 3, "bootmedic: error: the target stopped answering while erasing (its signature now reads 0x1E9597)"),
        ("programmer-unplugged", 4, "bootmedic: error: the programmer disappeared from USB while writing flash at 0x7fe0 (unplugged?)"),
        ("programmer-hangs", 4, "bootmedic: error: the programmer stopped answering while writing flash at 0x7fe0 (no reply within 5000 ms)"),
        ("stuck-bit", 8, "bootmedic: error: verification failed at 0x7001: wrote 0xC0, read 0xC4 twice"),
    ]

    @Test(.needsFirmware, arguments: faults)
    func eachFaultHasItsMessageAndExitStatus(_ f: (fault: String, status: Int32, message: String)) throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try rehearse(["--programmer", "usbasp", "--part", "atmega32u4", "--rule", "pro-micro-5v", "--fault", f.fault], backups: dir)
        #expect(result.status == f.status, "\(f.fault): \(result.stderr)")
        #expect(result.stderr.hasPrefix(f.message), "\(f.fault): \(result.stderr)")
        #expect(!result.stdout.contains("failed"))
        #expect(result.stderr.split(separator: "\n").count == 1, "one line")
        let kept = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        #expect(kept.isEmpty == ["no-target", "wrong-part"].contains(f.fault), "backup kept once taken")
    }

    @Test func usbtinyRefusesAT90USB128BeforeAnythingIsWritten() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let boot = try MemoryImage(bytes: [UInt8](repeating: 0x0C, count: 4096), at: 0x1E000)
        try IntelHex.format(boot).write(to: dir.appendingPathComponent("dfu.hex"), atomically: true, encoding: .utf8)
        let rules = dir.appendingPathComponent("rules.toml")
        try """
        [[rule]]
        name = "teensypp"
        match = { part = "at90usb1286" }
        bootloader = "dfu.hex"
        fuses = { low = 0x5E, high = 0x99, extended = 0xF3 }
        clock = "crystal"
        clock_div8 = true
        """.write(to: rules, atomically: true, encoding: .utf8)
        let initial = dir.appendingPathComponent("initial.bin")
        try Data((0..<0x20000).map { UInt8($0 & 0x7F) }).write(to: initial)
        let dump = dir.appendingPathComponent("dump")
        let result = try run(Fixtures.bootmedicBinary, ["rehearse", "--rules", rules.path, "--programmer", "usbtiny", "--part", "at90usb1286",
                                                        "--initial-flash", initial.path, "--dump", dump.path, "--backup-dir", dir.appendingPathComponent("b").path])
        #expect(result.status == 7)
        #expect(result.stderr == "bootmedic: error: refused before erasing anything: USBtinyISP addresses only the first 64 KiB of flash, and AT90USB1286 has 128 KiB: it would write the bootloader to the wrong place and fail verification; use a USBasp, an Arduino as ISP or a Bus Pirate\n")
        #expect(try Data(contentsOf: dump.appendingPathComponent("flash.bin")) == Data(contentsOf: initial))
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("b").path))
    }

    @Test func aRulesFileWithErrorsIsRefused() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let rules = dir.appendingPathComponent("rules.toml")
        try "[[rule]]\nname = \"x\"\nmatch = { part = \"atmega32u5\" }\nbootloader = \"x.hex\"\n".write(to: rules, atomically: true, encoding: .utf8)
        let result = try run(Fixtures.bootmedicBinary, ["rehearse", "--rules", rules.path, "--programmer", "usbasp", "--part", "atmega32u4"])
        #expect(result.status == 7)
        #expect(result.stderr.contains("\(rules.path):3:18: error: [x] unknown part 'atmega32u5'"))
        #expect(result.stderr.hasSuffix("bootmedic: error: \(rules.path) has 1 error; see `bootmedic rules check \(rules.path)`\n"))
    }

    @Test func restoreWithoutAProgrammerSaysSo() throws {
        let result = try run(Fixtures.bootmedicBinary, ["restore", "--rules", config, "--firmware-dir", Fixtures.firmwareDirectory.path, "--programmer", "usbasp"])
        #expect(result.status == 4)
        #expect(result.stderr == "bootmedic: error: no USBasp programmer is plugged in\n")
        let probe = try run(Fixtures.bootmedicBinary, ["probe"])
        #expect(probe.status == 4)
        #expect(probe.stderr == "bootmedic: error: no USBasp or USBtinyISP programmer is plugged in\n")
    }
}

@Suite struct STM32RehearseCommandTests {
    @Test(.needsFirmware, arguments: [false, true])
    func restoresTheBluepillAndDumpsIt(_ protected: Bool) throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let dump = dir.appendingPathComponent("dump")
        let result = try rehearse(["--programmer", "stlink", "--part", "stm32f103"] + (protected ? ["--protected"] : []), dump: dump, backups: dir.appendingPathComponent("b"))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("restored: STM32F10x medium-density now has bluepill"))
        #expect(result.stdout.contains(protected ? "  unlock " : "  health-check "))
        let flash = [UInt8](try Data(contentsOf: dump.appendingPathComponent("flash.bin")))
        let boot = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.firmware("generic_boot20_pc13.bin"))))
        #expect(flash.count == 65536)
        #expect(Array(flash.prefix(boot.count)) == boot)
        #expect(flash[boot.count...].allSatisfy { $0 == 0xFF })
        let options = try JSONSerialization.jsonObject(with: Data(contentsOf: dump.appendingPathComponent("option-bytes.json"))) as? [String: Any]
        #expect(options?["rdp"] as? Int == 0xA5)
    }

    @Test(.needsFirmware) func eachSTLinkFaultHasItsExitStatus() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (fault, status) in [("swapped-wires", Int32(3)), ("no-power", 3), ("old-firmware", 5), ("programmer-unplugged", 4)] {
            let result = try rehearse(["--programmer", "stlink", "--part", "stm32f103", "--fault", fault], backups: dir)
            #expect(result.status == status, "\(fault): \(result.stderr)")
            #expect(result.stderr.hasPrefix("bootmedic: error: "), "\(fault)")
        }
        let wrong = try rehearse(["--programmer", "usbasp", "--part", "atmega32u4", "--fault", "swapped-wires"], backups: dir)
        #expect(wrong.status == 1)
        #expect(wrong.stderr == "bootmedic: error: the swapped-wires fault does not apply to usbasp rehearsals\n")
    }
}

@Suite struct TraceCommandTests {
    /// `rehearse --trace` records the USB transfers or the serial line; `replay` runs the real driver and
    /// restore against them; a trace with one changed byte stops at the step that met it, with its exit status.
    @Test(.needsFirmware, arguments: [("usbasp", "atmega32u4", "pro-micro-5v", " control-in request=4 "),
                      ("stlink", "stm32f103", "bluepill", " bulk-read endpoint=0x81 length=1024 "),
                      ("stk500v1", "atmega32u4", "pro-micro-5v", " read count=257 ")])
    func aRehearsalsTraceReplaysAndAChangedByteIsCaught(_ c: (programmer: String, part: String, rule: String, lastRead: String)) throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let trace = dir.appendingPathComponent("job.trace").path
        let recorded = try rehearse(["--programmer", c.programmer, "--part", c.part, "--rule", c.rule, "--trace", trace],
                                    backups: dir.appendingPathComponent("b1"))
        #expect(recorded.status == 0, "\(recorded.stderr)")
        let replay = ["replay", trace, "--rules", config, "--firmware-dir", Fixtures.firmwareDirectory.path, "--rule", c.rule,
                      "--backup-dir", dir.appendingPathComponent("b2").path, "--json"]
        let replayed = try run(Fixtures.bootmedicBinary, replay)
        #expect(replayed.status == 0, "\(replayed.stderr)")
        let report = try json(replayed.stdout)
        #expect(report["outcome"] as? String == "restored")

        var lines = try String(contentsOfFile: trace, encoding: .utf8).components(separatedBy: "\n")
        let last = try #require(lines.lastIndex { $0.contains(c.lastRead) })
        let parts = lines[last].components(separatedBy: " -> ")
        var bytes = parts[1].split(separator: " ").map { UInt8($0, radix: 16)! }
        bytes[bytes.count / 2] ^= 0x10
        lines[last] = parts[0] + " -> " + bytes.map { String(format: "%02x", $0) }.joined(separator: " ")
        try lines.joined(separator: "\n").write(toFile: trace, atomically: true, encoding: .utf8)
        let changed = try run(Fixtures.bootmedicBinary, replay)
        let failed = try json(changed.stdout)
        #expect(failed["failedStep"] as? String == "verify-flash", "\(changed.stdout)")
        #expect(changed.status != 0)
    }
}
