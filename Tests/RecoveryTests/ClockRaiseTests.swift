import AVRISP
import Foundation
import Parts
import Recovery
import Rules
import Simulation
import TestSupport
import Testing

/// raise_clock: a factory chip whose rule clears CKDIV8 on the oscillator it already runs on has that one
/// bit cleared first, and the rest of the job runs at the faster SCK.
@Suite struct ClockRaiseTests {
    @Test(.needsFirmware, arguments: [ProgrammerKind.usbasp, .usbtiny])
    func aFactoryChipIsProgrammedAtFullSpeed(_ kind: ProgrammerKind) throws {
        let part = avr("atmega32u4")
        let run = try Rehearsal(kind, "atmega32u4", rule: "pro-micro-5v", flash: garbage(part.flash.size))
        defer { try? FileManager.default.removeItem(at: run.backupDirectory) }
        #expect(run.result.outcome == .restored, "\(run.result.summary)")
        let raise = try #require(run.result.steps.first { $0.step == .raiseClock })
        #expect(raise.detail.hasPrefix("low fuse 0x5E → 0xDE (CKDIV8 cleared); SCK \(kind == .usbasp ? "375 kHz → 1.5 MHz" : "333 kHz → 1 MHz")"))
        #expect(run.sink.finishedSteps.firstIndex(of: .raiseClock)! < run.sink.finishedSteps.firstIndex(of: .backup)!)
        #expect(run.result.programmer.sck == (kind == .usbasp ? "1.5 MHz" : "1 MHz"), "backup, write and verify at the raised SCK")
        #expect(part.fusesMatch(expected: FuseSet(low: 0xFF, high: 0xD8, extended: 0xFB), actual: run.bench.chip.fuses))
        // The backup keeps the fuses the chip arrived with, not the raised ones.
        let backup = try ChipState.read(from: try #require(run.result.backupPath))
        #expect(backup.fuses == FuseSet(low: 0x5E, high: 0x99, extended: 0xC3))
        #expect(backup.flash == garbage(part.flash.size))
    }

    @Test(.needsFirmware) func raiseClockFalseKeepsTheFactorySpeed() throws {
        let rules = try ruleSet(Fixtures.seedRules.replacingOccurrences(of: "clock_div8 = false", with: "clock_div8 = false\nraise_clock = false"))
        let run = try Rehearsal(.usbasp, "atmega32u4", rule: "pro-micro-5v", rules: rules)
        #expect(run.result.outcome == .restored)
        #expect(!run.sink.finishedSteps.contains(.raiseClock))
        #expect(run.result.programmer.sck == "375 kHz")
    }

    /// Neither a rule that keeps CKDIV8, nor one that moves the chip to another oscillator class, nor a
    /// chip whose lock bits hold its fuses, is raised early.
    @Test(.needsFirmware) func onlyASafeRaiseIsMade() throws {
        let keeps = try Rehearsal(.usbasp, "atmega32u4", rule: "atmel-dfu")
        #expect(keeps.result.outcome == .restored)
        #expect(!keeps.sink.finishedSteps.contains(.raiseClock))

        // A factory ATmega328P runs on its internal RC oscillator; the rule wants a crystal.
        let crystal = try ruleSet("""
            [[rule]]
            name = "uno-like"
            match = { part = "atmega328p" }
            bootloader = "Caterina-promicro16.hex"
            fuses = { low = 0xFF, high = 0xD8, extended = 0xFD }
            clock = "crystal"
            allow_unsafe_fuses = true
            """)
        let other = try Rehearsal(.usbasp, "atmega328p", rule: "uno-like", rules: crystal)
        #expect(other.result.outcome == .restored, "\(other.result.summary)")
        #expect(!other.sink.finishedSteps.contains(.raiseClock))

        let locked = try Rehearsal(.usbasp, "atmega32u4", rule: "pro-micro-5v", faults: [.locked])
        #expect(locked.result.outcome == .restored)
        #expect(!locked.sink.finishedSteps.contains(.raiseClock))
    }

    /// The cable comes loose right after the early fuse write: the job says what it changed, the chip's
    /// memory is untouched, and the next attempt finds the chip (now faster) and restores it.
    @Test(.needsFirmware) func aCableThatComesLooseAfterTheRaiseLeavesTheChipReachable() throws {
        let part = avr("atmega32u4")
        let bench = try SimulatedBench(kind: .usbasp, part: part, flash: garbage(part.flash.size), faults: [.vanishesAfterFuseWrite])
        let backups = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: backups) }
        let rules = try ruleSet()
        let first = RecoveryJob(programmer: USBasp(device: bench.usbDevice!, time: bench.clock), rules: rules, ruleName: "pro-micro-5v",
                                backups: BackupStore(directory: backups.path), sink: RecordingSink()).run()
        let failure = try #require(first.failure)
        #expect(failure.step == .raiseClock)
        #expect(failure.reason.exitCode == 3)
        #expect(failure.clockRaise == ClockRaise(byte: .low, from: 0x5E, to: 0xDE, detail: failure.clockRaise?.detail ?? "",
                                                 original: FuseSet(low: 0x5E, high: 0x99, extended: 0xC3)))
        #expect(failure.description.hasPrefix("no target answers: programming enable got no echo"))
        #expect(failure.description.contains("; it failed while changing the low fuse from 0x5E to 0xDE (CKDIV8 cleared early"))
        #expect(failure.description.hasSuffix("the chip holds one of the two values, its memory is untouched"))
        #expect(bench.chip.fuses.low == 0xDE)
        #expect(bench.chip.flash == garbage(part.flash.size))
        #expect(bench.chip.pageWrites == 0)

        // Back on the cable: the chip answers at the faster SCK straight away and is restored.
        bench.chip.vanishAfterFuseWrite = false
        bench.chip.isAttached = true
        let second = RecoveryJob(programmer: USBasp(device: bench.usbDevice!, time: bench.clock), rules: rules, ruleName: "pro-micro-5v",
                                 backups: BackupStore(directory: backups.path), sink: RecordingSink()).run()
        #expect(second.outcome == .restored, "\(second.summary)")
        #expect(second.programmer.sck == "1.5 MHz")
        #expect(!second.steps.contains { $0.step == .raiseClock }, "nothing left to raise")
        #expect(try ChipState.read(from: try #require(second.backupPath)).flash == garbage(part.flash.size))
        #expect(part.fusesMatch(expected: FuseSet(low: 0xFF, high: 0xD8, extended: 0xFB), actual: bench.chip.fuses))
    }
}
