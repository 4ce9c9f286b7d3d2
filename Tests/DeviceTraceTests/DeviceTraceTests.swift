import AVRISP
import DeviceTrace
import Foundation
import Parts
import Recovery
import Rules
import Simulation
import TestSupport
import Testing
import Transport

@Suite struct DeviceTraceTests {
    /// Records a rehearsed restore over a simulated USBasp, then plays the trace to the real driver.
    func recordedRestore() throws -> (trace: String, result: RecoveryResult) {
        let dir = try Fixtures.temporaryDirectory()
        let path = dir.appendingPathComponent("usbasp.trace").path
        let chip = SimulatedAVR(part: avr("atmega32u4"), clock: VirtualClock())
        let recorder = try TraceRecorder(path: path)
        let device = recorder.recording(SimulatedUSBasp(chip: chip, serialNumber: "TRACE1"), time: chip.clock)
        let result = RecoveryJob(programmer: USBasp(device: device, time: chip.clock), rules: try rules(), ruleName: "pro-micro-5v",
                                 backups: BackupStore(directory: dir.appendingPathComponent("backups").path), sink: RecordingSink()).run()
        return (try String(contentsOfFile: path, encoding: .utf8), result)
    }

    func rules() throws -> RuleSet {
        try #require(RulesFile.parse(Fixtures.seedRules, path: "t.toml", firmwareDirectory: Fixtures.firmwareDirectory.path).ruleSet)
    }

    func replay(_ trace: String) throws -> (RecoveryResult, ReplayUSBDevice) {
        let device = try ReplayUSBDevice(trace: trace)
        let backups = try Fixtures.temporaryDirectory()
        let result = RecoveryJob(programmer: USBasp(device: device, time: device.clock), rules: try rules(), ruleName: "pro-micro-5v",
                                 backups: BackupStore(directory: backups.path), sink: RecordingSink()).run()
        return (result, device)
    }

    @Test(.needsFirmware) func aRecordedRestoreReplaysGreen() throws {
        let (trace, recorded) = try recordedRestore()
        #expect(recorded.outcome == .restored)
        #expect(trace.hasPrefix("1 # usb 16C0:05DC \"USBasp\" serial=\"TRACE1\" release=0x0107 port=1-1\n"))
        let (replayed, device) = try replay(trace)
        #expect(replayed.outcome == .restored, "\(replayed.failure?.description ?? "")")
        #expect(replayed.steps.map(\.step) == recorded.steps.map(\.step))
        #expect(replayed.steps.map(\.bytes) == recorded.steps.map(\.bytes))
        #expect(device.remainingTransfers == 0)
        #expect(abs(replayed.totalSeconds - recorded.totalSeconds) < 0.01, "time moves as recorded: \(replayed.totalSeconds) s against \(recorded.totalSeconds) s")
    }

    @Test(.needsFirmware) func oneChangedByteFailsAtTheStepThatMetIt() throws {
        let (trace, _) = try recordedRestore()
        var lines = trace.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        // A byte of flash read back while verifying: the last flash read of the job.
        let verifyRead = try #require(lines.lastIndex { $0.contains(" control-in request=4 ") })
        var changed = lines
        changed[verifyRead] = flipFirstAnswerByte(lines[verifyRead])
        let (failedVerify, _) = try replay(changed.joined(separator: "\n"))
        #expect(failedVerify.failure?.step == .verifyFlash, "\(failedVerify.failure?.description ?? "no failure")")
        // A byte of a page the host sent: the driver now sends what the trace never saw.
        let write = try #require(lines.firstIndex { $0.contains(" control-out request=6 ") })
        lines[write] = lines[write].replacingOccurrences(of: " data=", with: " data=5a", options: [], range: nil)
        let (failedWrite, _) = try replay(lines.joined(separator: "\n"))
        #expect(failedWrite.failure?.step == .writeFlash)
        #expect(failedWrite.failure?.description.contains("replay: trace line \(write + 1) recorded control-out request=6") == true,
                "\(failedWrite.failure?.description ?? "")")
    }

    @Test func aMalformedTraceIsNamedByLine() {
        #expect(throws: TraceError.malformed(line: 2, "unknown transfer 'control-sideways'")) {
            try ReplayUSBDevice(trace: "1 # usb 16C0:05DC \"USBasp\"\n1 0.1 control-sideways request=1 -> 00")
        }
        #expect(throws: TraceError.noSession(2)) { try ReplayUSBDevice(trace: "1 # usb 16C0:05DC \"USBasp\"\n", session: 2) }
    }

    private func flipFirstAnswerByte(_ line: String) -> String {
        let parts = line.components(separatedBy: " -> ")
        var bytes = parts[1].split(separator: " ").map { UInt8($0, radix: 16)! }
        bytes[0] ^= 0x01
        return parts[0] + " -> " + bytes.map { String(format: "%02x", $0) }.joined(separator: " ")
    }
}
