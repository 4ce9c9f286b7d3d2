import FirmwareImage
import Foundation
import TestSupport
import Testing

/// `bootmedic flash` against `bootmedic simulate --bootloader caterina`, as a bench runs it on a Pro
/// Micro's port.
@Suite(.serialized) struct FlashCommandTests {
    private func proMicro(state: URL) throws -> SimulatorProcess {
        try SimulatorProcess(["--bootloader", "caterina", "--part", "atmega32u4", "--initial-flash", Fixtures.firmware("Caterina-promicro16.hex"),
                              "--initial-fuses", "FF:D8:CB"], state: state)
    }

    /// With a file and no rules, like `qmk flash`: the file goes below the bootloader of whatever part
    /// the bootloader reports.
    @Test(.needsFirmware) func aFileIsFlashedWithoutRules() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<5000, in: dir)
        let simulator = try proMicro(state: dir.appendingPathComponent("state"))
        let flash = try bootmedic("flash", "--port", simulator.path, app, "--backup-dir", dir.appendingPathComponent("backups").path)
        try simulator.finish()
        #expect(flash.status == 0, "\(flash.stdout)\(flash.stderr)")
        #expect(flash.stdout.contains("select-rule") && flash.stdout.contains("flash synthetic-0.hex"), "\(flash.stdout)")
        let chip = try [UInt8](Data(contentsOf: dir.appendingPathComponent("state/flash.bin")))
        #expect(Array(chip[0..<5000]) == (try FirmwareFile(path: app).image.bytes(in: 0..<5000)))
        let boot = try FirmwareFile(path: Fixtures.firmware("Caterina-promicro16.hex")).image
        #expect(Array(chip[0x7000..<0x8000]) == boot.bytes(in: 0x7000..<0x8000), "the bootloader is untouched")
    }

    /// A Leonardo running a sketch: `rehearse --running-sketch` touches its port as a bench does, the
    /// board comes up in Caterina and the rule's application is flashed below it.
    @Test(.needsFirmware) func aBoardRunningASketchIsTouchedIntoCaterina() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<9000, in: dir)
        let rules = dir.appendingPathComponent("r.toml")
        try """
        [[rule]]
        name = "leonardo"
        match = { usb = "2341:8036", part = "atmega32u4" }
        use_1200bps_touch = true
        bootloader = "\(Fixtures.firmware("Caterina-promicro16.hex"))"
        fuses = { low = 0xFF, high = 0xD8, extended = 0xCB }
        application = "\(app)"
        """.write(to: rules, atomically: true, encoding: .utf8)
        let dump = dir.appendingPathComponent("dump")
        let run = try bootmedic("rehearse", "--bootloader", "caterina", "--running-sketch", "--part", "atmega32u4", "--rules", rules.path,
                                "--dump", dump.path, "--backup-dir", dir.appendingPathComponent("b").path)
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        #expect(run.stderr.contains("sending Arduino Leonardo running a sketch at /dev/pts/") && run.stderr.contains("(1200-baud touch)"), "\(run.stderr)")
        #expect(run.stdout.contains("select-rule") && run.stdout.contains("leonardo"))
        let chip = try [UInt8](Data(contentsOf: dump.appendingPathComponent("flash.bin")))
        #expect(Array(chip[0..<9000]) == (try FirmwareFile(path: app).image.bytes(in: 0..<9000)))
        #expect(chip[9000..<0x7000].allSatisfy { $0 == 0xFF })
        let boot = try FirmwareFile(path: Fixtures.firmware("Caterina-promicro16.hex")).image
        #expect(Array(chip[0x7000..<0x8000]) == boot.bytes(in: 0x7000..<0x8000), "Caterina untouched")

        // Without a rule that asks for the touch there is nothing to send it to its bootloader for.
        let plain = dir.appendingPathComponent("plain.toml")
        try "[[rule]]\nname = \"p\"\nmatch = { part = \"atmega32u4\" }\napplication = \"\(app)\"\n".write(to: plain, atomically: true, encoding: .utf8)
        let refused = try bootmedic("rehearse", "--bootloader", "caterina", "--running-sketch", "--part", "atmega32u4", "--rules", plain.path)
        #expect(refused.status == 7 && refused.stderr.contains("--running-sketch needs a rule with use_1200bps_touch"), "\(refused.stderr)")
    }

    /// The touch finds the bootloader by the board's USB socket: a port udev does not know is refused
    /// before anything is sent.
    @Test(.needsFirmware) func theTouchNeedsAPortUdevKnows() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<5000, in: dir)
        let simulator = try proMicro(state: dir.appendingPathComponent("state"))
        let flash = try bootmedic("flash", "--port", simulator.path, "--touch", app, "--backup-dir", dir.appendingPathComponent("backups").path)
        try simulator.finish()
        #expect(flash.status == 7, "\(flash.stdout)\(flash.stderr)")
        #expect(flash.stderr.contains("is not a USB serial port udev knows: the 1200-baud touch needs the board's USB socket"), "\(flash.stderr)")
        let chip = try [UInt8](Data(contentsOf: dir.appendingPathComponent("state/flash.bin")))
        #expect(chip[0..<0x7000].allSatisfy { $0 == 0xFF }, "nothing written")
    }

    /// A file that reaches into the bootloader's section is refused before anything is erased.
    @Test(.needsFirmware) func aFileThatDoesNotFitIsRefused() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0x6F00..<0x7100, in: dir)
        let simulator = try proMicro(state: dir.appendingPathComponent("state"))
        let flash = try bootmedic("flash", "--port", simulator.path, app, "--backup-dir", dir.appendingPathComponent("backups").path)
        try simulator.finish()
        #expect(flash.status == 7, "\(flash.stdout)\(flash.stderr)")
        #expect(flash.stderr.contains("the application reaches 0x70FF, into the bootloader's section at 0x7000"), "\(flash.stderr)")
        let chip = try [UInt8](Data(contentsOf: dir.appendingPathComponent("state/flash.bin")))
        #expect(chip[0..<0x7000].allSatisfy { $0 == 0xFF }, "nothing was written")
    }

    @Test func nothingToFlashIsSaid() throws {
        let flash = try bootmedic("flash", "--port", "/dev/null")
        #expect(flash.status == 7)
        #expect(flash.stderr.contains("give the application to flash, or the rules that name it (--rules FILE)"), "\(flash.stderr)")
    }
}
