import Bootloaders
import DeviceCatalog
import FirmwareImage
import Foundation
import Parts
import Recovery
import Rules
import Simulation
import TestSupport
import Testing
import Transport

/// A QMK keyboard's ATmega32U4 waiting in Atmel DFU: QMK's bootloader_atmega32u4_1_0_0.hex at 0x7000
/// (its 4 KiB boot section), fuses as QMK seeds them.
func keyboardInAtmelDFU(flash extra: [UInt8]? = nil, part name: String = "atmega32u4") throws -> SimulatedAVR {
    let boot = try FirmwareFile(path: Fixtures.firmware("bootloader_atmega32u4_1_0_0.hex")).image
    let part = avr(name)
    let top = part.flash.size - 0x1000
    var flash = extra ?? [UInt8](repeating: 0xFF, count: top)
    flash += [UInt8](repeating: 0xFF, count: top - flash.count)
    flash += boot.bytes(in: 0x7000..<0x8000)
    return SimulatedAVR(part: part, clock: VirtualClock(), flash: flash, fuses: FuseSet(low: 0x5E, high: 0x99, extended: 0xF3), lock: 0x2F)
}

func atmelDFURules(application: String, part: String = "atmega32u4", extra: String = "") -> String {
    """
    [[rule]]
    name = "keyboard"
    match = { part = "\(part)" }
    application = "\(application)"
    \(extra)
    """
}

/// A flash through the simulated Atmel DFU bootloader, as `bootmedic flash` drives a real one.
struct AtmelDFUFlash {
    let device: SimulatedAtmelDFU
    let result: RecoveryResult
    let sink: RecordingSink

    init(_ chip: SimulatedAVR, rules: String, rule: String? = nil, secured: Bool = false, pulledAfterBlocks: Int? = nil) throws {
        device = SimulatedAtmelDFU(chip: chip, productID: try #require(DeviceCatalog.atmelDFUProductID(for: chip.part.id)), secured: secured)
        device.faults.unplugAfterFlashWrites = pulledAfterBlocks
        (result, sink) = try runBootloaderJob(AtmelDFUBootloader(device: device, time: chip.clock), clock: chip.clock, rules: rules, rule: rule)
    }
}

@Suite struct AtmelDFUTests {
    @Test(.needsFirmware) func anApplicationIsFlashedBelowTheBootloader() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<12_000, in: dir)
        let chip = try keyboardInAtmelDFU(flash: garbage(0x7000))
        let before = chip.flash
        let run = try AtmelDFUFlash(chip, rules: atmelDFURules(application: app))
        #expect(run.result.outcome == .restored, "\(run.result.summary)")
        #expect(Array(chip.flash[0..<12_000]) == (try FirmwareFile(path: app).image.bytes(in: 0..<12_000)))
        #expect(chip.flash[12_000..<0x7000].allSatisfy { $0 == 0xFF }, "the rest of the application section is erased")
        #expect(Array(chip.flash[0x7000...]) == Array(before[0x7000...]), "the bootloader's section is untouched")
        #expect(run.sink.finishedSteps == [.connect, .identify, .selectRule, .check, .healthCheck, .backup, .erase, .writeFlash, .verifyFlash, .release])
        #expect(run.sink.outcomes[.connect]?.detail == "Atmel DFU bootloader version 0x10 at 03EB:2FF4, 128-byte blocks")
        #expect(run.sink.outcomes[.identify]?.detail == "ATmega32U4 (0x1E9587), application section 0x0000–0x6FFF")
        #expect(run.sink.outcomes[.release]?.detail == "the application runs: the bootloader's device went away")
        #expect(run.device.hasLeft)
        // 12 000 bytes in 1 KiB transfers: 12 program commands (the last carries the partial page).
        #expect(run.device.programCommands == 12)
        #expect(run.result.part?.id == "atmega32u4")
    }

    /// The signature the bootloader reads must be the rule's part; nothing is erased otherwise.
    @Test(.needsFirmware) func aRuleForAnotherPartFlashesNothing() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<4096, in: dir)
        let chip = try keyboardInAtmelDFU(flash: garbage(0x7000))
        let before = chip.flash
        let run = try AtmelDFUFlash(chip, rules: atmelDFURules(application: app, part: "atmega16u2"), rule: "keyboard")
        #expect(run.result.failure?.step == .selectRule)
        #expect(run.result.failure?.reason.exitCode == 6)
        #expect(run.result.failure?.description == "the chip's signature 0x1E9587 is ATmega32U4, but rule 'keyboard' is for ATmega16U2; nothing was written")
        #expect(chip.flash == before, "nothing erased")
    }

    /// Atmel's DFU bootloader fills the largest boot section (4 KiB on the 32U4): an application that
    /// reaches into it is refused before anything is erased.
    @Test(.needsFirmware) func anApplicationThatReachesTheBootloaderIsRefused() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0x6000..<0x7010, in: dir)
        let chip = try keyboardInAtmelDFU(flash: garbage(0x7000))
        let before = chip.flash
        let run = try AtmelDFUFlash(chip, rules: atmelDFURules(application: app))
        #expect(run.result.failure?.step == .check)
        #expect(run.result.failure?.description.contains("the application reaches 0x700F, into the bootloader's section at 0x7000") == true, "\(run.result.summary)")
        #expect(chip.flash == before)
    }

    @Test(.needsFirmware) func aBoardPulledMidFlashNamesTheStepAndKeepsItsBootloader() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<10_000, in: dir)
        let chip = try keyboardInAtmelDFU(flash: garbage(0x7000))
        let before = chip.flash
        let run = try AtmelDFUFlash(chip, rules: atmelDFURules(application: app), pulledAfterBlocks: 3)
        #expect(run.result.failure?.step == .writeFlash)
        #expect(run.result.failure?.reason.exitCode == 3)
        #expect(run.result.failure?.description.hasPrefix("the board's bootloader went away while writing flash at 0x00C00") == true, "\(run.result.summary)")
        #expect(run.result.failure?.backupPath != nil, "the application section was saved first")
        #expect(Array(chip.flash[0x0000..<0x0C00]) == (try FirmwareFile(path: app).image.bytes(in: 0..<0x0C00)), "three blocks landed")
        #expect(Array(chip.flash[0x7000...]) == Array(before[0x7000...]))
    }

    /// With the security bit set nothing can be read, so nothing can be saved: the job stops before the
    /// erase unless the rule says backup = false; then the erase clears the bit and the write is verified.
    @Test(.needsFirmware) func aSecuredChipIsErasedOnlyWithoutABackup() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<3000, in: dir)
        let chip = try keyboardInAtmelDFU(flash: garbage(0x7000))
        let before = chip.flash
        let refused = try AtmelDFUFlash(chip, rules: atmelDFURules(application: app), secured: true)
        #expect(refused.result.failure?.step == .backup)
        #expect(refused.result.failure?.description.contains("security bit is set") == true, "\(refused.result.summary)")
        #expect(refused.result.failure?.description.contains("set backup = false in rule 'keyboard'") == true)
        #expect(chip.flash == before)

        let run = try AtmelDFUFlash(chip, rules: atmelDFURules(application: app, extra: "backup = false"), secured: true)
        #expect(run.result.outcome == .restored, "\(run.result.summary)")
        #expect(run.sink.outcomes[.verifyFlash]?.detail == "3000 bytes match")
        #expect(Array(chip.flash[0..<3000]) == (try FirmwareFile(path: app).image.bytes(in: 0..<3000)))
    }

    /// An AT90USB1286 has two 64 KiB pages: a write and its read-back cross the boundary through the
    /// page selection, and its 8 KiB bootloader section is kept.
    @Test(.needsFirmware) func aWriteCrossesThe64KiBPage() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0xF000..<0x11000, in: dir)
        let part = avr("at90usb1286")
        let chip = SimulatedAVR(part: part, clock: VirtualClock(), flash: garbage(part.flash.size), fuses: FuseSet(low: 0x5E, high: 0x99, extended: 0xF3), lock: 0x2F)
        let before = chip.flash
        let run = try AtmelDFUFlash(chip, rules: atmelDFURules(application: app, part: "at90usb1286"))
        #expect(run.result.outcome == .restored, "\(run.result.summary)")
        #expect(run.sink.outcomes[.identify]?.detail == "AT90USB1286 (0x1E9782), application section 0x0000–0x1DFFF")
        #expect(Array(chip.flash[0xF000..<0x11000]) == (try FirmwareFile(path: app).image.bytes(in: 0xF000..<0x11000)))
        #expect(Array(chip.flash[0x1E000...]) == Array(before[0x1E000...]))
    }

    /// The DFU state machine: a client that left the device in dfuERROR is cleared back to dfuIDLE first.
    @Test(.needsFirmware) func anEarlierErrorIsClearedFirst() throws {
        let chip = try keyboardInAtmelDFU()
        let device = SimulatedAtmelDFU(chip: chip, productID: 0x2FF4)
        #expect(throws: USBError.self) { try device.controlIn(to: .classInterface, request: DFURequest.upload.rawValue, value: 0, index: 0, length: 8, timeoutMilliseconds: 100) }
        let dfu = DFUInterface(device: device, time: chip.clock)
        #expect(try dfu.status("checking").state == .error)
        try dfu.returnToIdle()
        #expect(try dfu.status("checking") == DFUStatusReport(status: .ok, pollMilliseconds: 0, state: .idle))
    }
}

/// The rule's `eeprom` after the application, through both bootloaders that write EEPROM.
@Suite(.serialized) struct BootloaderEEPROMTests {
    @Test(.needsFirmware) func eraseClearsTheEEPROM() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<3000, in: dir)
        let chip = try keyboardInAtmelDFU(flash: garbage(0x7000))
        let settings = garbage(1024, seed: 3)
        chip.selfWriteEEPROM(at: 0, settings)
        let run = try AtmelDFUFlash(chip, rules: atmelDFURules(application: app, extra: "eeprom = \"erase\""))
        #expect(run.result.outcome == .restored, "\(run.result.summary)")
        #expect(chip.eeprom.allSatisfy { $0 == 0xFF })
        #expect(run.sink.finishedSteps.suffix(3) == [.verifyFlash, .writeEEPROM, .release])
        let differing = settings.filter { $0 != 0xFF }.count
        #expect(run.sink.outcomes[.writeEEPROM]?.detail.hasPrefix("erased (") == true, "\(run.sink.outcomes[.writeEEPROM]?.detail ?? "")")
        #expect((run.sink.outcomes[.writeEEPROM]?.bytes ?? 0) >= differing)
    }

    /// Through Caterina: a file is written where it differs, read back; the rest of the EEPROM stays.
    @Test(.needsFirmware) func aFileIsWrittenThroughCaterina() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<2000, in: dir)
        let file = dir.appendingPathComponent("settings.bin")
        let settings = garbage(64, seed: 5)
        try Data(settings).write(to: file)
        let chip = try proMicroInCaterina()
        chip.selfWriteEEPROM(at: 0, [UInt8](repeating: 0x11, count: 1024))
        let run = try CaterinaFlash(chip, rules: caterinaRules(application: app) + "\neeprom = \"\(file.path)\"")
        #expect(run.result.outcome == .restored, "\(run.result.summary)")
        #expect(Array(chip.eeprom[0..<64]) == settings)
        #expect(chip.eeprom[64...].allSatisfy { $0 == 0x11 })
        #expect(run.sink.outcomes[.writeEEPROM]?.detail == "64 bytes in place (64 written), read back")
        // Flashed again, nothing differs: the board is left alone.
        let again = try CaterinaFlash(chip, rules: caterinaRules(application: app) + "\neeprom = \"\(file.path)\"")
        #expect(again.result.outcome == .healthy, "\(again.result.summary)")
    }

    @Test(.needsFirmware) func anEEPROMFileLargerThanThePartsIsRefused() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<2000, in: dir)
        let file = dir.appendingPathComponent("big.bin")
        try Data(garbage(1500)).write(to: file)
        let chip = try keyboardInAtmelDFU(flash: garbage(0x7000))
        let before = chip.flash
        let run = try AtmelDFUFlash(chip, rules: atmelDFURules(application: app, extra: "eeprom = \"\(file.path)\""))
        #expect(run.result.failure?.step == .check)
        #expect(run.result.failure?.description.contains("reaches 0x05DB, beyond the 1024 bytes of EEPROM of ATmega32U4") == true, "\(run.result.summary)")
        #expect(chip.flash == before)
    }
}
