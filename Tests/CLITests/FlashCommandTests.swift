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
