import AVRISP
import Parts
import Testing
import TestSupport
import Transport

/// RDY/BSY polling against a scripted target and clock: the chip is blamed only when a poll sent after
/// the deadline still reads busy.
@Suite struct ReadyBusyTests {
    /// A clock the test moves by hand.
    final class ManualClock: TimeSource {
        var now: UInt64 = 0
        func sleep(nanoseconds: UInt64) { now += nanoseconds }
    }

    /// Answers each RDY/BSY poll from a script (busy or not), then lets the clock move on by the time the
    /// host takes before it looks at the answer.
    final class ScriptedTarget: ISPProgrammer {
        let identity = ProgrammerIdentity(kind: .usbasp, name: "scripted", firmware: nil, serialNumber: nil, port: nil)
        let flashAddressLimit: Int? = nil
        let pollsReadyBusy = true
        let adaptsSCK = true
        let readBlockSize = 64
        let clock = ManualClock()
        var time: TimeSource { clock }
        var answers: [(busy: Bool, thenMicroseconds: UInt64)]
        private(set) var polls = 0

        init(_ answers: [(busy: Bool, thenMicroseconds: UInt64)]) { self.answers = answers }

        func transfer(_ instruction: ISPInstruction) throws(ISPError) -> [UInt8] {
            polls += 1
            let next = answers.isEmpty ? (busy: true, thenMicroseconds: 1_000) : answers.removeFirst()
            defer { clock.now += next.thenMicroseconds * 1000 }
            return [0, 0, 0, next.busy ? 1 : 0]
        }

        func enterProgrammingMode() throws(ISPError) {}
        func targetAnswers() throws(ISPError) -> Bool { true }
        func leaveProgrammingMode() {}
        func readFlash(from address: UInt32, count: Int, part: AVRPart) throws(ISPError) -> [UInt8] { [] }
        func writeFlash(_ pages: [FlashPage], part: AVRPart, progress: (Int) -> Void) throws(ISPError) {}
        func readEEPROM(from address: Int, count: Int, part: AVRPart) throws(ISPError) -> [UInt8] { [] }
        func writeEEPROM(_ bytes: [(address: Int, value: UInt8)], part: AVRPart) throws(ISPError) {}
        func close() {}
    }

    @Test func aHostHeldBackPastTheDeadlineDoesNotBlameTheChip() throws {
        // Busy at once; the host thread is then held back 12 ms (worst case 4.5 ms, limit 9 ms) before it
        // looks; the poll it sends then reads ready.
        let target = ScriptedTarget([(true, 12_000), (false, 1_000)])
        try target.waitUntilReady(worstCaseMicroseconds: 4_500, operation: "writing the flash page at 0x7480")
        #expect(target.polls == 2)
    }

    @Test func aChipStillBusyAfterTheDeadlineIsNamed() {
        let target = ScriptedTarget([])   // busy forever, 1 ms a poll
        #expect(throws: ISPError.stillBusy(operation: "writing the flash page at 0x7480", waitedMicroseconds: 11_000)) {
            try target.waitUntilReady(worstCaseMicroseconds: 4_500, operation: "writing the flash page at 0x7480")
        }
        #expect(target.polls == 11, "a poll each ms; the one sent at 10 ms, past the 9 ms deadline, still reads busy")
    }
}
