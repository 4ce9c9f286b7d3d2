import Bootloaders
import FirmwareImage
import Foundation
import Parts
import Recovery
import Rules
import Simulation
import TestSupport
import Testing
import Transport

/// A V-USB board in BootloadHID: the PS2AVRGB keyboards' ATmega32A with QMK's BootloadHID at 0x7000
/// (fuses L 0x0F H 0xD0: BOOTSZ=00, the 4 KiB boot section). It tells only its flash's size, erases
/// each page as it writes it and reads nothing back.
@Suite(.enabled(if: Fixtures.hasFirmware)) struct BootloadHIDTests {
    static let fuses = FuseSet(low: 0x0F, high: 0xD0)

    /// The chip as a PS2AVRGB board leaves the factory: BootloadHID at its section, an old application below.
    private func board(_ part: String = "atmega32a") throws -> SimulatedAVR {
        let loader = try FirmwareFile(path: Fixtures.firmware("bootloader_ps2avrgb_bootloadhid_1.0.1.hex")).image
        var flash = garbage(0x7000)
        flash += loader.bytes(in: 0x7000..<0x8000)
        return SimulatedAVR(part: avr(part), clock: VirtualClock(), flash: flash, fuses: Self.fuses, lock: 0x2F)
    }

    private func flash(_ chip: SimulatedAVR, rules: String, pulledAfterPages: Int? = nil) throws -> (SimulatedBootloadHID, RecoveryResult, RecordingSink) {
        let device = SimulatedBootloadHID(chip: chip)
        device.faults.unplugAfterFlashWrites = pulledAfterPages
        let (result, sink) = try runBootloaderJob(BootloadHIDBootloader(device: device, time: chip.clock), clock: chip.clock, rules: rules)
        return (device, result, sink)
    }

    /// Two segments with a gap, one ending mid-page: the gap and everything above the application up to
    /// the bootloader end up blank, BootloadHID's 4 KiB untouched.
    @Test func aPS2AVRGBBoardIsFlashedBelowItsBootloader() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var app = try FirmwareFile(path: try syntheticHex(0..<5000, in: dir)).image
        try app.write(garbage(0x50, seed: 3), at: 0x5010)
        let path = dir.appendingPathComponent("app.hex").path
        try IntelHex.format(app).write(toFile: path, atomically: true, encoding: .utf8)
        let chip = try board()
        let before = chip.flash
        let (device, result, sink) = try flash(chip, rules: atmelDFURules(application: path, part: "atmega32a", extra: "backup = false"))
        #expect(result.outcome == .restored, "\(result.summary)")
        #expect(sink.outcomes[.connect]?.detail.hasPrefix("BootloadHID (32 KiB of flash, 128-byte pages)") == true)
        #expect(sink.outcomes[.identify]?.detail == "ATmega32A (told by its 32 KiB of flash in 128-byte pages), application section 0x0000–0x6FFF")
        #expect(sink.outcomes[.verifyFlash]?.detail == "not verified: BootloadHID cannot read flash back (its protocol only writes)")
        #expect(Array(chip.flash[0..<0x7000]) == app.bytes(in: 0..<0x7000), "the application exactly, the rest of the section blank")
        #expect(Array(chip.flash[0x7000...]) == Array(before[0x7000...]), "BootloadHID's own 4 KiB are untouched")
        #expect(chip.pageWrites == 0x7000 / 128, "each page of the section written once")
        #expect(device.hasLeft)
    }

    /// The same sizes on an ATmega328P: the rule's part decides between the parts they fit.
    @Test func theRulesPartTellsParts() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let chip = try board("atmega328p")
        let (_, result, sink) = try flash(chip, rules: atmelDFURules(application: try syntheticHex(0..<300, in: dir), part: "atmega328p", extra: "backup = false"))
        #expect(result.outcome == .restored, "\(result.summary)")
        #expect(sink.outcomes[.identify]?.detail.hasPrefix("ATmega328P (told by its 32 KiB") == true)
    }

    /// A rule for a part with other sizes matches nothing the board can be: nothing is written.
    @Test func aRuleForAnotherPartWritesNothing() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let chip = try board()
        let before = chip.flash
        let (_, result, _) = try flash(chip, rules: atmelDFURules(application: try syntheticHex(0..<300, in: dir), part: "atmega16", extra: "backup = false"))
        #expect(result.failure?.step == .identify)
        #expect(result.failure?.description.contains("32 KiB of flash in 128-byte pages (ATmega32, ATmega32A") == true, "\(result.summary)")
        #expect(result.failure?.reason.exitCode == 7, "no rule: refused")
        #expect(chip.flash == before && chip.pageWrites == 0)
    }

    @Test func anApplicationReachingIntoTheBootloaderIsRefusedBeforeWriting() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let chip = try board()
        let before = chip.flash
        let (_, result, _) = try flash(chip, rules: atmelDFURules(application: try syntheticHex(0x6F00..<0x7100, in: dir), part: "atmega32a", extra: "backup = false"))
        #expect(result.failure?.step == .check)
        #expect(chip.flash == before && chip.pageWrites == 0)
    }

    /// Nothing reads back: without backup = false the job stops before the first page.
    @Test func withoutBackupFalseNothingIsWritten() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let chip = try board()
        let (_, result, _) = try flash(chip, rules: atmelDFURules(application: try syntheticHex(0..<100, in: dir), part: "atmega32a"))
        #expect(result.failure?.step == .backup)
        #expect(chip.pageWrites == 0)
    }

    @Test func thePulledBoardNamesTheStep() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let chip = try board()
        let before = chip.flash
        let (_, result, _) = try flash(chip, rules: atmelDFURules(application: try syntheticHex(0..<0x6E00, in: dir), part: "atmega32a", extra: "backup = false"),
                                       pulledAfterPages: 10)
        #expect(result.failure?.step == .writeFlash, "\(result.summary)")
        #expect(result.failure?.reason.exitCode == 3)
        #expect(Array(chip.flash[0x7000...]) == Array(before[0x7000...]))
    }
}
