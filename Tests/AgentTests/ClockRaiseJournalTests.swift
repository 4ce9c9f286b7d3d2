import Agent
import Foundation
import Parts
import Programmers
import Recovery
import Rules
import Simulation
import TestSupport
import Testing

/// A job that fails after raising the chip's clock says so in its journal entry.
@Suite struct ClockRaiseJournalTests {
    @Test(.needsFirmware) func theFailedEntryNamesTheFusesTheChipArrivedWith() throws {
        let part = avr("atmega32u4")
        let bench = try SimulatedBench(kind: .usbasp, part: part, faults: [.vanishesAfterFuseWrite])
        guard case let .isp(programmer) = try ProgrammerRegistry.driver(for: .usbasp).open(usb: bench.usbDevice!, time: bench.clock) else {
            Issue.record("not an ISP programmer"); return
        }
        let rules = try #require(RulesFile.parse(Fixtures.seedRules, path: "t.toml", firmwareDirectory: Fixtures.firmwareDirectory.path).ruleSet)
        let writer = RecordingJournal()
        let journal = JobJournal(job: "j1", programmer: programmer.identity, writer: writer)
        let result = RecoveryJob(programmer: programmer, rules: rules, ruleName: "pro-micro-5v", backups: nil, sink: journal).run()
        #expect(result.outcome == .failed)
        let failed = try #require(writer.entries.last)
        #expect(failed.kind == .failed)
        #expect(failed.fields["BOOTMEDIC_STEP"] == "raise-clock")
        #expect(failed.fields["BOOTMEDIC_EXIT_STATUS"] == "3")
        #expect(failed.fields["BOOTMEDIC_ARRIVED_FUSES"] == "L 0x5E, H 0x99, E 0xC3")
        #expect(failed.message.contains("it failed while changing the low fuse from 0x5E to 0xDE"))
    }
}
