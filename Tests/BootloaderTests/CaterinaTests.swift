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

/// A Pro Micro waiting in Caterina (its bootloader at 0x7000, fuses FF/D8/CB, Arduino's lock 0x2F).
func proMicroInCaterina(flash extra: [UInt8]? = nil) throws -> SimulatedAVR {
    let boot = try FirmwareFile(path: Fixtures.firmware("Caterina-promicro16.hex")).image
    var flash = extra ?? [UInt8](repeating: 0xFF, count: 0x7000)
    flash += [UInt8](repeating: 0xFF, count: 0x7000 - flash.count)
    flash += boot.bytes(in: 0x7000..<0x8000)
    return SimulatedAVR(part: avr("atmega32u4"), clock: VirtualClock(), flash: flash, fuses: FuseSet(low: 0xFF, high: 0xD8, extended: 0xCB), lock: 0x2F)
}

func caterinaRules(application: String, part: String = "atmega32u4") -> String {
    """
    [[rule]]
    name = "sketch"
    match = { part = "\(part)" }
    bootloader = "Caterina-promicro16.hex"
    application = "\(application)"
    fuses = { low = 0xFF, high = 0xD8, extended = 0xCB }
    clock = "crystal"
    clock_div8 = false
    """
}

/// A flash through Caterina over a real pseudo-terminal, as `bootmedic flash --port` does it.
struct CaterinaFlash {
    let chip: SimulatedAVR
    let result: RecoveryResult
    let sink = RecordingSink()

    init(_ chip: SimulatedAVR, rules: String, rule: String? = nil, pulledAfterPages: Int? = nil) throws {
        self.chip = chip
        let server = try SerialSimulatorServer(simulator: SimulatedCaterina(chip: chip))
        server.line = .usbCDC
        if let pulledAfterPages {
            server.fault = .cablePulled
            server.faultAfterPageWrites = pulledAfterPages
        }
        server.start()
        let set = try #require(RulesFile.parse(rules, path: "t.toml", firmwareDirectory: Fixtures.firmwareDirectory.path).ruleSet)
        let backups = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: backups) }
        let line = try SerialPort(path: server.path, baudRate: 57600)
        result = RecoveryJob(bootloader: AVR109Bootloader(line: line, time: SystemTimeSource()), rules: set, ruleName: rule,
                             backups: BackupStore(directory: backups.path), sink: sink).run()
        line.close()
        server.stop()
    }
}

@Suite(.serialized) struct CaterinaTests {
    @Test(.needsFirmware) func anApplicationIsFlashedBelowTheBootloader() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<10_000, in: dir)
        let chip = try proMicroInCaterina(flash: garbage(0x7000))
        let before = chip.flash
        let run = try CaterinaFlash(chip, rules: caterinaRules(application: app))
        #expect(run.result.outcome == .restored, "\(run.result.summary)")
        let image = try FirmwareFile(path: app).image
        #expect(Array(chip.flash[0..<10_000]) == image.bytes(in: 0..<10_000))
        #expect(chip.flash[10_000..<0x7000].allSatisfy { $0 == 0xFF }, "the rest of the application section is erased")
        #expect(Array(chip.flash[0x7000...]) == Array(before[0x7000...]), "the bootloader's section is untouched")
        #expect(chip.fuses == FuseSet(low: 0xFF, high: 0xD8, extended: 0xCB) && chip.lock & 0x3F == 0x2F)
        #expect(run.sink.finishedSteps == [.connect, .identify, .selectRule, .check, .healthCheck, .backup, .erase, .writeFlash, .verifyFlash, .release])
        #expect(run.sink.outcomes[.release]?.detail == "the application runs: the bootloader's device went away")
        #expect(run.sink.outcomes[.connect]?.detail.hasPrefix("CATERIN 1.0 at /dev/pts/") == true)
        #expect(run.result.part?.id == "atmega32u4")
    }

    /// A rule that only flashes through the bootloader needs no bootloader key, and an ISP restore of the
    /// same part never picks it.
    @Test(.needsFirmware) func aRuleWithOnlyAnApplicationFlashesIt() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<2048, in: dir)
        let rules = """
        [[rule]]
        name = "keyboard"
        match = { part = "atmega32u4" }
        application = "\(app)"
        """
        let chip = try proMicroInCaterina()
        let run = try CaterinaFlash(chip, rules: rules)
        #expect(run.result.outcome == .restored, "\(run.result.summary)")
        #expect(Array(chip.flash[0..<2048]) == (try FirmwareFile(path: app).image.bytes(in: 0..<2048)))
        let set = try #require(RulesFile.parse(rules, path: "t.toml").ruleSet)
        let m32u4 = avr("atmega32u4")
        #expect(set.firstMatch(for: TargetContext(avrPart: m32u4, signature: m32u4.signature, programmer: .usbasp)) == nil)
    }

    @Test(.needsFirmware) func aRuleForAnotherPartFlashesNothing() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<4096, in: dir)
        let chip = try proMicroInCaterina(flash: garbage(0x7000))
        let before = chip.flash
        let named = try CaterinaFlash(chip, rules: caterinaRules(application: app, part: "atmega328p"), rule: "sketch")
        #expect(named.result.failure?.step == .selectRule)
        #expect(named.result.failure?.reason.exitCode == 6)
        #expect(named.result.failure?.description == "the chip's signature 0x1E9587 is ATmega32U4, but rule 'sketch' is for ATmega328P; nothing was written")
        let unnamed = try CaterinaFlash(chip, rules: caterinaRules(application: app, part: "atmega328p"))
        #expect(unnamed.result.failure?.step == .selectRule)
        #expect(chip.flash == before, "nothing erased")
    }

    /// The chip's fuses give Caterina a 4 KiB section at 0x7000; an application that reaches into it is
    /// refused before anything is erased, even where the rule's own bootloader file would leave room.
    @Test(.needsFirmware) func anApplicationThatReachesTheBootloaderIsRefused() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0x6000..<0x7100, in: dir)
        let small = try syntheticHex(0x7E00..<0x8000, in: dir)
        let rules = caterinaRules(application: app).replacingOccurrences(of: "\"Caterina-promicro16.hex\"", with: "\"\(small)\"")
            .replacingOccurrences(of: "high = 0xD8", with: "high = 0xDE")
        let chip = try proMicroInCaterina(flash: garbage(0x7000))
        let before = chip.flash
        let run = try CaterinaFlash(chip, rules: rules)
        #expect(run.result.failure?.step == .check)
        #expect(run.result.failure?.description.contains("the application reaches 0x70FF, into the bootloader's section at 0x7000") == true, "\(run.result.summary)")
        #expect(chip.flash == before)
    }

    @Test(.needsFirmware) func aBoardPulledMidFlashNamesTheStepAndKeepsItsBootloader() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<10_000, in: dir)
        let chip = try proMicroInCaterina(flash: garbage(0x7000))
        let before = chip.flash
        let run = try CaterinaFlash(chip, rules: caterinaRules(application: app), pulledAfterPages: 3)
        #expect(run.result.failure?.step == .writeFlash)
        #expect(run.result.failure?.reason.exitCode == 3)
        #expect(run.result.failure?.description.hasPrefix("the board's bootloader went away while writing flash at") == true, "\(run.result.summary)")
        #expect(run.result.failure?.backupPath != nil, "the application section was saved first")
        #expect(Array(chip.flash[0x7000...]) == Array(before[0x7000...]))
    }

    @Test(.needsFirmware) func aBoardThatHasItsApplicationIsLeftAlone() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<4096, in: dir)
        let chip = try proMicroInCaterina(flash: try FirmwareFile(path: app).image.bytes(in: 0..<4096))
        let run = try CaterinaFlash(chip, rules: caterinaRules(application: app))
        #expect(run.result.outcome == .healthy, "\(run.result.summary)")
        #expect(chip.pageWrites == 0)
    }

    /// The reference client: avrdude's `-c avr109` writes and verifies through the simulated Caterina,
    /// and the chip holds its image below the untouched bootloader.
    @Test(.needsFirmware) func avrdudeFlashesThroughTheSimulatedCaterina() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<6000, in: dir)
        let chip = try proMicroInCaterina()
        let before = chip.flash
        let server = try SerialSimulatorServer(simulator: SimulatedCaterina(chip: chip))
        server.line = .usbCDC
        server.start()
        let write = try run("/usr/bin/avrdude", ["-v", "-c", "avr109", "-P", server.path, "-b", "57600", "-p", "m32u4", "-U", "flash:w:\(app):i"])
        server.stop()
        #expect(write.status == 0, "\(write.stderr)")
        #expect(write.stderr.contains("Programmer id    = CATERIN; type = S"), "\(write.stderr)")
        #expect(write.stderr.contains("buffered memory access with buffersize=128 bytes"), "\(write.stderr)")
        #expect(write.stderr.lowercased().contains("device signature = 0x1e9587"), "\(write.stderr)")
        #expect(write.stderr.contains("6000 bytes of flash verified"), "\(write.stderr)")
        #expect(Array(chip.flash[0..<6000]) == (try FirmwareFile(path: app).image.bytes(in: 0..<6000)))
        #expect(Array(chip.flash[0x7000...]) == Array(before[0x7000...]))
    }
}
