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

/// A V-USB board's ATmega328P in USBaspLoader; Debian's ATmegaBOOT stands in for the loader's own code
/// at the top of flash (the section the loader keeps is the part's largest, 4 KiB).
func vusbBoardInUSBaspLoader(flash extra: [UInt8]? = nil) throws -> SimulatedAVR {
    let boot = try FirmwareFile(path: "/usr/share/arduino/hardware/arduino/avr/bootloaders/atmega/ATmegaBOOT_168_atmega328.hex").image
    var flash = extra ?? [UInt8](repeating: 0xFF, count: 0x7800)
    flash += [UInt8](repeating: 0xFF, count: 0x7800 - flash.count)
    flash += boot.bytes(in: 0x7800..<0x8000)
    return SimulatedAVR(part: avr("atmega328p"), clock: VirtualClock(), flash: flash, fuses: FuseSet(low: 0xFF, high: 0xDA, extended: 0xFD), lock: 0x2F)
}

struct USBaspLoaderFlash {
    let device: SimulatedUSBaspLoader
    let result: RecoveryResult
    let sink: RecordingSink

    init(_ chip: SimulatedAVR, rules: String, rule: String? = nil, pulledAfterPages: Int? = nil) throws {
        device = SimulatedUSBaspLoader(chip: chip)
        device.faults.unplugAfterFlashWrites = pulledAfterPages
        (result, sink) = try runBootloaderJob(USBaspLoaderBootloader(device: device, time: chip.clock), clock: chip.clock, rules: rules, rule: rule)
    }
}

@Suite struct USBaspLoaderTests {
    private static let hasArduinoCore = FileManager.default.fileExists(atPath: "/usr/share/arduino/hardware/arduino/avr/bootloaders/atmega/ATmegaBOOT_168_atmega328.hex")

    @Test(.enabled(if: hasArduinoCore)) func anApplicationIsFlashedBelowTheLoader() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<9000, in: dir)
        let chip = try vusbBoardInUSBaspLoader(flash: garbage(0x7800))
        let before = chip.flash
        let run = try USBaspLoaderFlash(chip, rules: atmelDFURules(application: app, part: "atmega328p"))
        #expect(run.result.outcome == .restored, "\(run.result.summary)")
        #expect(Array(chip.flash[0..<9000]) == (try FirmwareFile(path: app).image.bytes(in: 0..<9000)))
        #expect(chip.flash[9000..<0x7000].allSatisfy { $0 == 0xFF })
        #expect(Array(chip.flash[0x7800...]) == Array(before[0x7800...]), "the loader's own code is untouched")
        #expect(run.sink.outcomes[.identify]?.detail == "ATmega328P (0x1E950F), application section 0x0000–0x6FFF")
        #expect(run.sink.outcomes[.release]?.detail == "the application runs: the bootloader's device went away")
        #expect(run.device.hasLeft)
        // 9000 bytes: 71 pages of 128, each its own WRITEFLASH.
        #expect(run.device.flashWrites == 71)
    }

    @Test(.enabled(if: hasArduinoCore)) func anotherPartsRuleAndAnOversizedApplicationAreRefused() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let chip = try vusbBoardInUSBaspLoader(flash: garbage(0x7800))
        let before = chip.flash
        let wrongPart = try USBaspLoaderFlash(chip, rules: atmelDFURules(application: try syntheticHex(0..<100, in: dir), part: "atmega168"), rule: "keyboard")
        #expect(wrongPart.result.failure?.step == .selectRule)
        let big = try USBaspLoaderFlash(chip, rules: atmelDFURules(application: try syntheticHex(0x6F00..<0x7080, in: dir), part: "atmega328p"))
        #expect(big.result.failure?.step == .check)
        #expect(big.result.failure?.description.contains("into the bootloader's section at 0x7000") == true, "\(big.result.summary)")
        #expect(chip.flash == before)
    }

    @Test(.enabled(if: hasArduinoCore)) func aBoardPulledMidFlashNamesTheStep() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let chip = try vusbBoardInUSBaspLoader(flash: garbage(0x7800))
        let before = chip.flash
        let run = try USBaspLoaderFlash(chip, rules: atmelDFURules(application: try syntheticHex(0..<4000, in: dir), part: "atmega328p"), pulledAfterPages: 5)
        #expect(run.result.failure?.step == .writeFlash)
        #expect(run.result.failure?.reason.exitCode == 3)
        #expect(run.result.failure?.description.hasPrefix("the board's bootloader went away while writing flash at 0x00280") == true, "\(run.result.summary)")
        #expect(Array(chip.flash[0x7800...]) == Array(before[0x7800...]))
    }
}
