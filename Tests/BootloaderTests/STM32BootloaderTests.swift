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

/// A Bluepill's F103 in the STM32duino bootloader (Maple DFU), and a Black Pill's F411 in ST's system
/// bootloader (DfuSe): the part told by the flash each describes, the application placed where the
/// bootloader takes it, the bootloader's own pages never written.
@Suite(.enabled(if: Fixtures.hasFirmware)) struct STM32BootloaderTests {
    static let base = 0x0800_0000

    private func bluepill() throws -> (SimulatedSTM32, [UInt8]) {
        let loader = Array(try Data(contentsOf: URL(fileURLWithPath: Fixtures.firmware("generic_boot20_pc13.bin"))))
        let flash = loader + [UInt8](repeating: 0xFF, count: 0x2000 - loader.count) + garbage(0xE000, seed: 4)
        return (SimulatedSTM32(model: .stm32f103, clock: VirtualClock(), flash: flash), loader)
    }

    private func binary(_ count: Int, seed: UInt8, in dir: URL) throws -> String {
        let path = dir.appendingPathComponent("app-\(seed).bin").path
        try Data(garbage(count, seed: seed)).write(to: URL(fileURLWithPath: path))
        return path
    }

    private func rules(_ application: String, part: String = "stm32f103", extra: String = "") -> String {
        """
        [[rule]]
        name = "sketch"
        match = { part = "\(part)" }
        application = "\(application)"
        \(extra)
        """
    }

    private func maple(_ chip: SimulatedSTM32, rules: String, pulledAfterBlocks: Int? = nil) throws -> (SimulatedMapleDFU, RecoveryResult, RecordingSink) {
        let device = SimulatedMapleDFU(chip: chip)
        device.faults.unplugAfterFlashWrites = pulledAfterBlocks
        let (result, sink) = try runBootloaderJob(MapleDFUBootloader(device: device, time: chip.clock), clock: chip.clock, rules: rules)
        return (device, result, sink)
    }

    /// A raw binary above the bootloader's 8 KiB (application_address), the rest of the section blank,
    /// the bootloader as it was, and a reboot into the sketch.
    @Test func aBluepillSketchGoesAboveTheSTM32duinoBootloader() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (chip, loader) = try bluepill()
        let app = try binary(20_000, seed: 9, in: dir)
        let (device, result, sink) = try maple(chip, rules: rules(app, extra: "application_address = 0x08002000"))
        #expect(result.outcome == .restored, "\(result.summary)")
        #expect(sink.outcomes[.identify]?.detail == "STM32F10x medium-density (told by its 64 KiB of flash in 1024-byte pages), application section 0x08002000–0x0800FFFF")
        #expect(sink.outcomes[.verifyFlash]?.detail == "20000 bytes match")
        #expect(Array(chip.flash[0..<loader.count]) == loader, "the bootloader's pages are untouched")
        let placed = Array(chip.flash[0x2000..<0x2000 + 20_000]) == garbage(20_000, seed: 9)
        #expect(placed)
        #expect(chip.flash[(0x2000 + 20_000)...].allSatisfy { $0 == 0xFF }, "the old application's pages above the sketch are blank")
        #expect(device.hasLeft, "the USB reset rebooted the board into the sketch")
    }

    /// Without application_address a binary is put where the bootloader takes applications, as
    /// `dfu-util -a 2 -D sketch.bin` does; a rule matching the bootloader's USB ids is chosen.
    @Test func aBinaryGoesWhereTheBootloaderTakesIt() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (chip, _) = try bluepill()
        let app = try binary(3000, seed: 2, in: dir)
        let text = """
            [[rule]]
            name = "by-usb"
            match = { usb = "1EAF:0003" }
            application = "\(app)"
            """
        let (_, result, _) = try maple(chip, rules: text)
        #expect(result.outcome == .restored, "\(result.summary)")
        #expect(result.rule == "by-usb")
        let placed = Array(chip.flash[0x2000..<0x2000 + 3000]) == garbage(3000, seed: 2)
        #expect(placed)
    }

    /// `bootmedic flash sketch.bin` with no rules: the binary on whatever the bootloader describes.
    @Test func flashFileWithoutRulesPlacesTheBinary() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (chip, loader) = try bluepill()
        let app = try binary(5000, seed: 8, in: dir)
        let job = RecoveryJob(bootloader: MapleDFUBootloader(device: SimulatedMapleDFU(chip: chip), time: chip.clock),
                              rules: RuleSet.flashing(app, backupDirectory: dir.path), backups: BackupStore(directory: dir.path), sink: RecordingSink())
        job.stepClock = chip.clock
        let result = job.run()
        #expect(result.outcome == .restored, "\(result.summary)")
        let placed = Array(chip.flash[0x2000..<0x2000 + 5000]) == garbage(5000, seed: 8) && Array(chip.flash[0..<loader.count]) == loader
        #expect(placed)
    }

    @Test func aSketchLargerThanTheFlashIsRefusedBeforeWriting() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (chip, _) = try bluepill()
        let before = chip.flash
        let (device, result, _) = try maple(chip, rules: rules(try binary(60_000, seed: 1, in: dir)))
        #expect(result.failure?.step == .check)
        #expect(result.failure?.description.contains("beyond the end of flash at 0x08010000") == true, "\(result.summary)")
        #expect(chip.flash == before && device.blocksWritten == 0)
    }

    @Test func aBoardPulledMidFlashNamesTheStepAndKeepsItsBootloader() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (chip, loader) = try bluepill()
        let (_, result, _) = try maple(chip, rules: rules(try binary(20_000, seed: 9, in: dir)), pulledAfterBlocks: 5)
        #expect(result.failure?.step == .writeFlash, "\(result.summary)")
        #expect(result.failure?.reason.exitCode == 3)
        #expect(Array(chip.flash[0..<loader.count]) == loader)
    }

    private func blackPill(protected: Bool = false) -> SimulatedSTM32 {
        SimulatedSTM32(model: .stm32f411, clock: VirtualClock(), flash: garbage(0x30000, seed: 6), readProtected: protected)
    }

    private func dfuse(_ chip: SimulatedSTM32, rules: String) throws -> (SimulatedDfuSe, RecoveryResult, RecordingSink) {
        let device = SimulatedDfuSe(chip: chip)
        let (result, sink) = try runBootloaderJob(DfuSeBootloader(device: device, time: chip.clock), clock: chip.clock, rules: rules)
        return (device, result, sink)
    }

    /// ST's bootloader is in ROM: the application starts at the flash base; only the sectors the backup
    /// did not read blank are erased, and the bootloader leaves for the application.
    @Test func aBlackPillIsFlashedThroughDfuSe() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let chip = blackPill()
        let (device, result, sink) = try dfuse(chip, rules: rules(try binary(40_000, seed: 3, in: dir), part: "stm32f411"))
        #expect(result.outcome == .restored, "\(result.summary)")
        #expect(sink.outcomes[.identify]?.detail == "STM32F411xC/E (told by its 512 KiB of flash in sectors of 16–128 KiB), application section 0x08000000–0x0807FFFF")
        let placed = Array(chip.flash[0..<40_000]) == garbage(40_000, seed: 3)
        #expect(placed)
        #expect(chip.flash[40_000...].allSatisfy { $0 == 0xFF })
        #expect(device.unitsErased == 6, "the four 16 KiB, the 64 KiB and the first 128 KiB sectors held data; the rest was blank")
        #expect(device.hasLeft)
    }

    @Test func aBlackPillPulledMidFlashNamesTheStep() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let chip = blackPill()
        let device = SimulatedDfuSe(chip: chip)
        device.faults.unplugAfterFlashWrites = 3
        let (result, _) = try runBootloaderJob(DfuSeBootloader(device: device, time: chip.clock), clock: chip.clock,
                                               rules: rules(try binary(40_000, seed: 3, in: dir), part: "stm32f411", extra: "backup = false"))
        #expect(result.failure?.step == .writeFlash, "\(result.summary)")
        #expect(result.failure?.reason.exitCode == 3)
        #expect(device.blocksWritten == 3)
    }

    /// Geehy's system bootloader answers with Geehy's ids (314B:0106): the chip is taken for an APM32.
    @Test func anAPM32IsToldByItsBootloadersIds() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let chip = SimulatedSTM32(model: .apm32f103, clock: VirtualClock())
        let device = SimulatedDfuSe(chip: chip, vendorID: 0x314B, productID: 0x0106)
        let (result, sink) = try runBootloaderJob(DfuSeBootloader(device: device, time: chip.clock), clock: chip.clock,
                                                  rules: rules(try binary(3000, seed: 5, in: dir), part: "apm32f103", extra: "backup = false"))
        #expect(result.outcome == .restored, "\(result.summary)")
        #expect(sink.outcomes[.identify]?.detail.hasPrefix("APM32F103 (told by its 64 KiB of flash in 1024-byte pages, Geehy's)") == true)
        let placed = Array(chip.flash[0..<3000]) == garbage(3000, seed: 5)
        #expect(placed)
    }

    @Test func aReadProtectedChipIsRefusedBeforeErasing() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let chip = blackPill(protected: true)
        let before = chip.flash
        let (device, result, _) = try dfuse(chip, rules: rules(try binary(100, seed: 3, in: dir), part: "stm32f411", extra: "backup = false"))
        #expect(result.failure?.step == .check)
        #expect(result.failure?.description.contains("read-protected") == true, "\(result.summary)")
        #expect(chip.flash == before && device.unitsErased == 0)
    }

    /// The F411's 512 KiB in sectors is no F103: a rule for one matches nothing the board can be.
    @Test func aRuleForAnotherLineWritesNothing() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let chip = blackPill()
        let before = chip.flash
        let (_, result, _) = try dfuse(chip, rules: rules(try binary(100, seed: 3, in: dir), part: "stm32f103", extra: "backup = false"))
        #expect(result.failure?.step == .identify || result.failure?.step == .selectRule, "\(result.summary)")
        #expect(result.failure?.reason.exitCode == 7)
        #expect(chip.flash == before)
    }

    @Test func dfuSeLayoutsAreRead() throws {
        let flash = try #require(DfuSeMemoryLayout("@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg"))
        #expect(flash.name == "Internal Flash" && flash.base == 0x0800_0000 && flash.size == 1024 * 1024)
        #expect(flash.geometry == .sectors([16, 16, 16, 16, 64, 128, 128, 128, 128, 128, 128, 128].map { $0 * 1024 }))
        let options = try #require(DfuSeMemoryLayout("@Option Bytes  /0x1FFFC000/01*016 e"))
        #expect(options.size == 16 && options.units[0].readable && options.units[0].writable && !options.units[0].erasable)
        let two = try #require(DfuSeMemoryLayout("@OTP Memory /0x1FFF7800/01*512 e,01*016 e"))
        #expect(two.units.map(\.address) == [0x1FFF_7800, 0x1FFF_7A00])
        #expect(DfuSeMemoryLayout("STM32duino bootloader v1.0  Upload to Flash 0x8002000") == nil)
        #expect(DfuSeMemoryLayout("@Flash /0x08000000/04*016Kz") == nil)
        let simulated = SimulatedDfuSe(chip: blackPill()).layout
        let again = DfuSeMemoryLayout(simulated.text) == simulated
        #expect(again, "\(simulated.text)")
    }
}
