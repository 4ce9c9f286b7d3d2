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

/// A Teensy in HalfKay: it writes blocks and reads nothing back. Its fuses give HalfKay the smallest
/// boot section (BOOTSZ=11: 512 bytes on the Teensy 2.0, 1 KiB on the ++ 2.0).
@Suite struct HalfKayTests {
    static let teensyFuses = FuseSet(low: 0x5F, high: 0xDF, extended: 0xF4)

    private func flash(_ chip: SimulatedAVR, rules: String, pulledAfterBlocks: Int? = nil) throws -> (SimulatedHalfKay, RecoveryResult, RecordingSink) {
        let device = try SimulatedHalfKay(chip: chip)
        device.faults.unplugAfterFlashWrites = pulledAfterBlocks
        let (result, sink) = try runBootloaderJob(HalfKayBootloader(device: device, time: chip.clock), clock: chip.clock, rules: rules)
        return (device, result, sink)
    }

    @Test func aTeensy2IsFlashedBelowHalfKay() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<7000, in: dir)
        let chip = SimulatedAVR(part: avr("atmega32u4"), clock: VirtualClock(), flash: garbage(0x8000), fuses: Self.teensyFuses, lock: 0x2F)
        let before = chip.flash
        let (device, result, sink) = try flash(chip, rules: atmelDFURules(application: app, extra: "backup = false"))
        #expect(result.outcome == .restored, "\(result.summary)")
        #expect(sink.outcomes[.connect]?.detail.hasPrefix("HalfKay on a Teensy 2.0 (130-byte reports)") == true)
        #expect(sink.outcomes[.identify]?.detail == "ATmega32U4 (0x1E9587), application section 0x0000–0x7DFF")
        #expect(sink.outcomes[.verifyFlash]?.detail == "not verified: HalfKay cannot read flash back (its protocol only writes)")
        #expect(Array(chip.flash[0..<7000]) == (try FirmwareFile(path: app).image.bytes(in: 0..<7000)))
        #expect(chip.flash[7000..<0x7E00].allSatisfy { $0 == 0xFF }, "the first report erased the application area")
        #expect(Array(chip.flash[0x7E00...]) == Array(before[0x7E00...]), "HalfKay's own 512 bytes are untouched")
        #expect(device.hasLeft)
    }

    /// Nothing can be saved: without backup = false the job stops before the first report (the erase).
    @Test func withoutBackupFalseNothingIsErased() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let chip = SimulatedAVR(part: avr("atmega32u4"), clock: VirtualClock(), flash: garbage(0x8000), fuses: Self.teensyFuses, lock: 0x2F)
        let before = chip.flash
        let (device, result, _) = try flash(chip, rules: atmelDFURules(application: try syntheticHex(0..<100, in: dir)))
        #expect(result.failure?.step == .backup)
        #expect(result.failure?.description.contains("set backup = false") == true)
        #expect(chip.flash == before && device.blocksWritten == 0)
    }

    /// A Teensy++ 2.0 (258-byte reports, addresses in 256-byte pages) above 64 KiB.
    @Test func aTeensyPlusPlusIsAddressedInPages() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0xFF00..<0x10200, in: dir)
        let chip = SimulatedAVR(part: avr("at90usb1286"), clock: VirtualClock(), fuses: Self.teensyFuses, lock: 0x2F)
        let (_, result, sink) = try flash(chip, rules: atmelDFURules(application: app, part: "at90usb1286", extra: "backup = false"))
        #expect(result.outcome == .restored, "\(result.summary)")
        #expect(sink.outcomes[.identify]?.detail == "AT90USB1286 (0x1E9782), application section 0x0000–0x1FBFF")
        #expect(Array(chip.flash[0xFF00..<0x10200]) == (try FirmwareFile(path: app).image.bytes(in: 0xFF00..<0x10200)))
    }

    @Test func thePulledBoardNamesTheStep() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let chip = SimulatedAVR(part: avr("atmega32u4"), clock: VirtualClock(), fuses: Self.teensyFuses, lock: 0x2F)
        let (_, result, _) = try flash(chip, rules: atmelDFURules(application: try syntheticHex(0..<4000, in: dir), extra: "backup = false"), pulledAfterBlocks: 4)
        #expect(result.failure?.step == .writeFlash)
        #expect(result.failure?.reason.exitCode == 3)
    }

    @Test func theReportSizeComesFromTheDescriptor() throws {
        let chip = SimulatedAVR(part: avr("at90usb1286"), clock: VirtualClock())
        #expect(HalfKayBootloader.outputReportBytes(in: try SimulatedHalfKay(chip: chip).reportDescriptor) == 258)
        #expect(HalfKayBootloader.outputReportBytes(in: [0x06, 0x9C, 0xFF, 0x09, 0x19]) == nil)
        #expect(HalfKayBootloader.outputReportBytes(in: [0x75]) == nil, "a truncated item")
        #expect(throws: SimulationError.self) { try SimulatedHalfKay(chip: SimulatedAVR(part: avr("atmega328p"), clock: VirtualClock())) }
    }
}
