import AVRISP
import FirmwareImage
import Foundation
import Parts
import Recovery
import Rules
import Simulation
import TestSupport
import Transport
import Testing

/// A restore cut short after the chip began to change is finished by the next job on that programmer
/// that finds the chip: from the erase on, with the first job's backup, never a second backup.
@Suite struct InterruptedRestoreTests {
    static let part = avr("atmega328p")
    static let rule = "arduino-atmega328p-16mhz"

    static func shippedRules() throws -> RuleSet {
        try #require(RulesFile.load(path: Fixtures.shippedRules).ruleSet)
    }

    static func job(_ device: USBDevice, _ bench: SimulatedBench, id: String, records: RestoreRecords, backups: URL, sink: RecordingSink = RecordingSink()) throws -> RecoveryJob {
        let job = RecoveryJob(programmer: USBasp(device: device, time: bench.clock), rules: try shippedRules(),
                              backups: BackupStore(directory: backups.path), sink: sink)
        job.records = records
        job.jobID = id
        return job
    }

    @Test func aRestoreCutShortIsFinishedByTheNextJob() throws {
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let records = RestoreRecords(directory: folder.path + "/jobs")
        let backups = folder.appendingPathComponent("backups")
        let bench = try SimulatedBench(kind: .usbasp, part: Self.part, flash: garbage(32768), eeprom: garbage(1024, seed: 5),
                                       faults: [.programmerUnplugged], imagePages: 4)

        let first = try Self.job(bench.usbDevice!, bench, id: "first", records: records, backups: backups).run()
        #expect(first.outcome == .failed)
        #expect(first.failure?.step == .writeFlash)
        let backup = try #require(first.failure?.backupPath)
        let left = records.all().records
        #expect(left.count == 1)
        #expect(left.first?.job == "first")
        #expect(left.first?.step == .writeFlash)
        #expect(left.first?.backup == backup)
        #expect(left.first?.rule == Self.rule)
        #expect(left.first?.target == Self.part.signature.description)
        #expect(left.first?.failure?.hasPrefix("the programmer disappeared from USB") == true)
        #expect(bench.chip.flash != garbage(32768), "the chip was erased and half-written")

        // The programmer is plugged back in: the same chip, a new device.
        let replugged = simulatedUSBProgrammer(.usbasp, chip: bench.chip, serialNumber: "SIM-USBASP")
        let sink = RecordingSink()
        let second = try Self.job(replugged, bench, id: "second", records: records, backups: backups, sink: sink).run()
        #expect(second.outcome == .restored, "\(second.summary)")
        #expect(second.resumed == "first")
        #expect(second.backupPath == backup)
        #expect(sink.events.contains { if case .resumed(job: "first", step: .writeFlash, backup: backup) = $0 { return true } else { return false } })
        #expect(!sink.finishedSteps.contains(.healthCheck))
        #expect(!sink.finishedSteps.contains(.backup))
        #expect(try FileManager.default.contentsOfDirectory(atPath: backups.path).filter { !$0.hasPrefix(".") }.count == 1, "no second backup")
        let image = try FirmwareFile(path: "/usr/share/arduino/hardware/arduino/avr/bootloaders/atmega/ATmegaBOOT_168_atmega328.hex").image
        #expect(bench.chip.flash == image.bytes(in: 0..<32768))
        #expect(bench.chip.eeprom == garbage(1024, seed: 5), "EEPROM from the first job's backup")
        #expect(records.all().records.isEmpty, "the record goes with the restore")
    }

    /// The record is part of what is saved before the erase: without it, nothing is erased.
    @Test func aRecordThatCannotBeWrittenStopsTheJobBeforeTheErase() throws {
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let blocker = folder.appendingPathComponent("state")
        #expect(FileManager.default.createFile(atPath: blocker.path, contents: Data()))
        let bench = try SimulatedBench(kind: .usbasp, part: Self.part, flash: garbage(32768))
        let result = try Self.job(bench.usbDevice!, bench, id: "j", records: RestoreRecords(directory: blocker.path + "/jobs"),
                                  backups: folder.appendingPathComponent("backups")).run()
        #expect(result.outcome == .failed)
        #expect(result.failure?.step == .erase)
        #expect(result.failure?.reason.exitCode == 9)
        #expect(result.failure?.description.hasPrefix("could not save the backup, so nothing was erased: cannot keep the restore record \(blocker.path)/jobs/") == true)
        #expect(bench.chip.flash == garbage(32768))
        #expect(bench.chip.pageWrites == 0)
    }

    /// A record names one chip: another part on the same programmer is restored as usual, and the record
    /// waits for its own chip.
    @Test func aRecordForAnotherChipWaits() throws {
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let records = RestoreRecords(directory: folder.path + "/jobs")
        let bench = try SimulatedBench(kind: .usbasp, part: Self.part, flash: garbage(32768))
        let identity = USBasp(device: bench.usbDevice!, time: bench.clock).identity
        let other = RestoreRecord(job: "older", programmer: "usbasp", programmerSerial: identity.serialNumber, port: identity.port,
                                  part: "ATmega32U4", target: avr("atmega32u4").signature.description, rule: "pro-micro-5v",
                                  bootloaderSHA256: String(repeating: "0", count: 64), backup: nil, step: .writeFlash, started: Date(), updated: Date())
        try records.write(other, programmer: identity)
        let sink = RecordingSink()
        let result = try Self.job(bench.usbDevice!, bench, id: "j", records: records, backups: folder.appendingPathComponent("backups"), sink: sink).run()
        #expect(result.outcome == .restored)
        #expect(result.resumed == nil)
        #expect(sink.finishedSteps.contains(.backup))
        #expect(records.all().records.map(\.job) == ["older"])
    }
}
