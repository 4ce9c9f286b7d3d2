import AVRISP
import Programmers
import FirmwareImage
import Foundation
import Parts
import Recovery
import Rules
import Simulation
import TestSupport
import Testing
import Transport

/// A restore through a serial driver, over a real pseudo-terminal, against a simulated programmer.
struct SerialRehearsal {
    let bench: SimulatedBench
    let result: RecoveryResult
    let sink: RecordingSink
    let backups: URL

    init(_ kind: ProgrammerKind, _ part: String, rule: String, faults: Set<SimulatedFault> = [], flash: [UInt8]? = nil,
         eeprom: [UInt8]? = nil, configure: (ISPProgrammer) -> Void = { _ in }) throws {
        bench = try SimulatedBench(kind: kind, part: avr(part), flash: flash, eeprom: eeprom, faults: faults)
        guard case let .serial(server) = bench.link else { throw SimulationError.unsupportedProgrammer(kind) }
        let rules = try #require(RulesFile.parse(Fixtures.seedRules, path: "t.toml", firmwareDirectory: Fixtures.firmwareDirectory.path).ruleSet)
        backups = try Fixtures.temporaryDirectory()
        sink = RecordingSink()
        var result: RecoveryResult
        do {
            guard case let .isp(isp) = try ProgrammerRegistry.driver(for: kind).open(serialPath: server.path, time: SystemTimeSource()) else {
                throw SimulationError.unsupportedProgrammer(kind)
            }
            configure(isp)
            result = RecoveryJob(programmer: isp, rules: rules, ruleName: rule, backups: BackupStore(directory: backups.path), sink: sink).run()
            isp.close()
        }
        bench.stop()
        self.result = result
    }
}

@Suite(.serialized) struct SerialRestoreTests {
    static let cases: [(rule: String, file: String, part: String, fuses: FuseSet)] = [
        ("atmel-dfu", "bootloader_atmega32u4_1_0_0.hex", "atmega32u4", FuseSet(low: 0x5E, high: 0x99, extended: 0xF3)),
        ("pro-micro-5v", "Caterina-promicro16.hex", "atmega32u4", FuseSet(low: 0xFF, high: 0xD8, extended: 0xFB)),
        ("arduino-micro", "Caterina-Micro.hex", "atmega32u4", FuseSet(low: 0xFF, high: 0xD8, extended: 0xFB)),
        ("ps2avrgb", "bootloader_ps2avrgb_bootloadhid_1.0.1.hex", "atmega32a", FuseSet(low: 0x0F, high: 0xD0)),
    ]

    @Test(.needsFirmware, arguments: cases, [ProgrammerKind.stk500v1, .avrisp, .buspirate])
    func everyRealBootloaderIsRestored(_ c: (rule: String, file: String, part: String, fuses: FuseSet), _ kind: ProgrammerKind) throws {
        let part = avr(c.part)
        let run = try SerialRehearsal(kind, c.part, rule: c.rule, flash: garbage(part.flash.size), eeprom: garbage(part.eeprom.size, seed: 5))
        defer { try? FileManager.default.removeItem(at: run.backups) }
        #expect(run.result.outcome == .restored, "\(run.result.summary)")
        let image = try FirmwareFile(path: Fixtures.firmware(c.file)).image
        #expect(run.bench.chip.flash == image.bytes(in: 0..<UInt32(part.flash.size)))
        #expect(part.fusesMatch(expected: c.fuses, actual: run.bench.chip.fuses))
        #expect(run.bench.chip.eeprom == garbage(part.eeprom.size, seed: 5), "EEPROM written back")
        #expect(run.bench.chip.instructionsWhileBusy.isEmpty)
        #expect(try ChipState.read(from: try #require(run.result.backupPath)).flash == garbage(part.flash.size))
    }

    @Test(.needsFirmware) func theBusPirateIsLeftAtItsConsole() throws {
        let run = try SerialRehearsal(.buspirate, "atmega32u4", rule: "pro-micro-5v")
        #expect(run.result.outcome == .restored)
        guard case let .serial(server) = run.bench.link, let pirate = server.simulator as? SimulatedBusPirate else {
            Issue.record("not a Bus Pirate bench"); return
        }
        #expect(pirate.isAtConsole)
        #expect(!pirate.poweredOn, "the target's supply is switched off again")
    }

    @Test(.needsFirmware) func aSlowTargetIsReachedByTheBusPirateAtALowerSpeed() throws {
        let run = try SerialRehearsal(.buspirate, "atmega32u4", rule: "pro-micro-5v", faults: [.slowClock])
        #expect(run.result.outcome == .restored)
        #expect(run.result.programmer.sck == "125 kHz")
    }

    @Test func arduinoISPCannotSlowDownForASlowTarget() throws {
        let run = try SerialRehearsal(.avrisp, "atmega328p", rule: "pro-micro-5v", faults: [.slowClock])
        #expect(run.result.failure?.step == .connect)
        #expect(run.result.failure?.reason.exitCode == 3)
        #expect(run.result.failure?.description.contains("ArduinoISP runs SCK at 125 kHz, so a target clocked below 500 kHz cannot follow it") == true)
    }
}

@Suite(.serialized) struct SerialFaultTests {
    @Test(.needsFirmware, arguments: [ProgrammerKind.stk500v1, .buspirate])
    func aPulledCableMidPageIsNamedAndTheBackupKept(_ kind: ProgrammerKind) throws {
        let start = Date()
        let run = try SerialRehearsal(kind, "atmega32u4", rule: "pro-micro-5v", faults: [.programmerUnplugged], flash: garbage(32768))
        #expect(run.result.failure?.step == .writeFlash)
        #expect(run.result.failure?.reason.exitCode == 4)
        #expect(run.result.failure?.description.contains("went away (the adapter was unplugged or reset)") == true, "\(run.result.failure?.description ?? "")")
        #expect(try ChipState.read(from: try #require(run.result.failure?.backupPath)).flash == garbage(32768))
        #expect(Date().timeIntervalSince(start) < 10)
    }

    @Test func aProgrammerThatNeverSyncsIsNamed() throws {
        let start = Date()
        let run = try SerialRehearsal(.avrisp, "atmega32u4", rule: "pro-micro-5v", faults: [.neverSyncs])
        #expect(run.result.failure?.step == .connect)
        #expect(run.result.failure?.reason.exitCode == 4)
        #expect(run.result.failure?.description.contains("never answered the STK500 sync within 1000 ms (it sent nothing); check that the ArduinoISP sketch (or the ISP firmware) is loaded and that the baud rate is 19200") == true, "\(run.result.failure?.description ?? "")")
        #expect(Date().timeIntervalSince(start) < 5, "bounded")
    }

    @Test func garbageOnTheLineIsNamed() throws {
        let run = try SerialRehearsal(.avrisp, "atmega32u4", rule: "pro-micro-5v", faults: [.garbage])
        #expect(run.result.failure?.step == .connect)
        #expect(run.result.failure?.description.contains("(it sent only noise (") == true, "\(run.result.failure?.description ?? "")")
        let pirate = try SerialRehearsal(.buspirate, "atmega32u4", rule: "pro-micro-5v", faults: [.garbage])
        let message = pirate.result.failure?.description ?? ""
        #expect(message.contains("did not enter binary mode (it answered \""), "\(message)")
        // Random noise once decoded to a combining mark that fused with the opening quote.
        #expect(message.unicodeScalars.allSatisfy { $0.isASCII }, "noise is shown as \\xNN: \(message)")
    }

    @Test(.needsFirmware) func aTooSlowAnswerTimesOutWithinItsBound() throws {
        let start = Date()
        let run = try SerialRehearsal(.avrisp, "atmega32u4", rule: "pro-micro-5v", faults: [.programmerHangs], flash: garbage(32768)) { isp in
            (isp as? STK500v1)?.replyTimeoutMilliseconds = 300
        }
        #expect(run.result.failure?.step == .writeFlash)
        #expect(run.result.failure?.description.contains("answered nothing within 300 ms where 1 byte was expected while ") == true, "\(run.result.failure?.description ?? "")")
        #expect(run.result.failure?.backupPath != nil)
        #expect(Date().timeIntervalSince(start) < 10)
    }
}

@Suite(.serialized) struct RecognitionTests {
    @Test func theCatalogNominatesCandidatesAndLeavesBootloadersAlone() {
        let catalog = DeviceCatalog.builtIn
        #expect(catalog.entry(for: USBID(vendor: 0x2341, product: 0x0043), product: nil)?.role == .serialCandidate([.stk500v1]))
        #expect(catalog.entry(for: USBID(vendor: 0x0403, product: 0x6001), product: nil)?.role == .serialCandidate([.stk500v1, .buspirate]))
        #expect(catalog.entry(for: USBID(vendor: 0x1B4F, product: 0x9205), product: nil)?.role == .bootloader(.caterina))
        #expect(catalog.entry(for: USBID(vendor: 0x1B4F, product: 0x9205), product: nil)?.name == "SparkFun Pro Micro 5V in Caterina")
        #expect(catalog.entry(for: USBID(vendor: 0x0BDA, product: 0x8153), product: nil) == nil)
    }

    @Test(arguments: [ProgrammerKind.stk500v1, .buspirate])
    func aHarmlessProbeTellsWhichFirmwareAnswers(_ kind: ProgrammerKind) throws {
        let bench = try SimulatedBench(kind: kind, part: avr("atmega32u4"))
        guard case let .serial(server) = bench.link else { return }
        let found = ProgrammerRegistry.identifySerialProgrammer(at: server.path, candidates: [.stk500v1, .buspirate], time: SystemTimeSource())
        bench.stop()
        #expect(found == kind)
        #expect(bench.chip.instructionCount == 0, "the probe sent nothing to the target")
        if let pirate = server.simulator as? SimulatedBusPirate { #expect(pirate.isAtConsole) }
    }

    @Test func aSilentDeviceIsNotAProgrammer() throws {
        let bench = try SimulatedBench(kind: .avrisp, part: avr("atmega32u4"), faults: [.neverSyncs])
        guard case let .serial(server) = bench.link else { return }
        #expect(ProgrammerRegistry.identifySerialProgrammer(at: server.path, candidates: [.avrisp], time: SystemTimeSource()) == nil)
        bench.stop()
    }
}
