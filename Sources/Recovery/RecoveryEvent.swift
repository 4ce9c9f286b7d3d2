import AVRISP
import BenchModel
import Parts
import STLink

/// The steps of a restore, in order. Raw values are what the journal's BOOTMEDIC_STEP and the
/// command line show.
public enum RecoveryStep: String, CaseIterable, Sendable, Codable {
    case connect, identify
    case selectRule = "select-rule"
    case check
    /// STM32: remove read protection (mass-erases the chip).
    case unlock
    case healthCheck = "health-check"
    /// AVR: the one fuse bit that divides the clock by 8 cleared early, as the rule's fuses would at the end.
    case raiseClock = "raise-clock"
    case backup, erase
    case writeFlash = "write-flash"
    case verifyFlash = "verify-flash"
    case restoreEEPROM = "restore-eeprom"
    case writeEEPROM = "write-eeprom"
    case writeFuses = "write-fuses"
    case verifyFuses = "verify-fuses"
    case writeLock = "write-lock"
    case release

    /// What the step does, for people.
    public var title: String {
        switch self {
        case .connect: return "connecting"
        case .identify: return "reading the signature"
        case .selectRule: return "choosing the rule"
        case .check: return "checking the plan"
        case .unlock: return "removing read protection"
        case .healthCheck: return "checking whether the board is healthy"
        case .raiseClock: return "raising the chip's clock"
        case .backup: return "backing up the chip"
        case .erase: return "erasing"
        case .writeFlash: return "writing flash"
        case .verifyFlash: return "verifying flash"
        case .restoreEEPROM: return "restoring EEPROM"
        case .writeEEPROM: return "writing EEPROM"
        case .writeFuses: return "writing fuses"
        case .verifyFuses: return "verifying fuses"
        case .writeLock: return "writing lock bits"
        case .release: return "releasing the target"
        }
    }
}

/// One finished step: how long it took on the clock the programmer uses, and how many bytes moved.
public struct StepReport: Sendable, Equatable {
    public let step: RecoveryStep
    public let nanoseconds: UInt64
    public let bytes: Int
    /// A short result for people ("ATmega32U4 (0x1E9587)", "14 pages", …).
    public let detail: String

    public var seconds: Double { Double(nanoseconds) / 1e9 }
}

/// How a restore ended.
public enum RecoveryOutcome: String, Sendable, Codable {
    /// The bootloader region, fuses and lock were already right; nothing was written.
    case healthy
    case restored
    case failed
}

/// Everything a restore found and did.
public struct RecoveryResult: Sendable {
    public var outcome: RecoveryOutcome
    public var programmer: ProgrammerIdentity
    public var signature: Signature?
    public var part: AVRPart?
    /// For an STM32: what it answered.
    public var stm32: STM32Target?
    public var rule: String?
    public var backupPath: String?
    /// The earlier job this one finished.
    public var resumed: String?
    public var fusesWritten: FuseSet?
    public var steps: [StepReport] = []
    public var failure: RecoveryFailure?
    public var totalNanoseconds: UInt64 = 0

    public var totalSeconds: Double { Double(totalNanoseconds) / 1e9 }

    /// The target's name for people.
    public var targetName: String? { part?.name ?? stm32?.partName }

    /// One line for a terminal or a log.
    public var summary: String {
        switch outcome {
        case .healthy:
            return "healthy: \(targetName ?? "target") already has \(rule ?? "its bootloader"); nothing written"
        case .restored:
            return "restored: \(targetName ?? "target") now has \(rule ?? "its bootloader")" + String(cFormat: " in %.2f s", totalSeconds)
        case .failed:
            return "failed: " + (failure?.description ?? "unknown error")
        }
    }
}

/// What a restore emits as it goes; the CLI renders these, the agent journals them, tests assert on them.
public enum RecoveryEvent: Sendable {
    case started(ProgrammerIdentity)
    case stepStarted(RecoveryStep)
    /// The target answered: its part name and, for an AVR, its signature ("0x1E9587") or, for an STM32, its chip id.
    case identified(part: String, id: String)
    /// The rule chosen for the target.
    case ruleChosen(String)
    case progress(RecoveryStep, done: Int, total: Int)
    case stepFinished(StepReport)
    /// A lint warning, a glitch that was retried, a decision worth knowing.
    case notice(RecoveryStep, Severity, String)
    /// The chip is one an earlier job (`job`) began changing and never finished; this job finishes it
    /// with that job's backup.
    case resumed(job: String, step: RecoveryStep, backup: String?)
    case finished(RecoveryResult)
}

/// Where events go: a terminal renderer, the journal, a test's recorder.
public protocol RecoveryEventSink: AnyObject {
    func record(_ event: RecoveryEvent)
}

/// Collects events, for tests and for callers that only want the result.
public final class RecordingSink: RecoveryEventSink {
    public private(set) var events: [RecoveryEvent] = []
    public init() {}
    public func record(_ event: RecoveryEvent) { events.append(event) }

    /// The steps that finished, in order.
    public var finishedSteps: [RecoveryStep] {
        events.compactMap { if case let .stepFinished(report) = $0 { return report.step } else { return nil } }
    }

    public var notices: [String] {
        events.compactMap { if case let .notice(_, _, text) = $0 { return text } else { return nil } }
    }

    /// Each finished step's report, by step (the last one where a step ran twice).
    public var outcomes: [RecoveryStep: StepReport] {
        var out: [RecoveryStep: StepReport] = [:]
        for case let .stepFinished(report) in events { out[report.step] = report }
        return out
    }
}
