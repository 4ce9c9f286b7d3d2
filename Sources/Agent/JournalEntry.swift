import BenchModel
import Parts
import Recovery

/// The kinds of journal entry bootmedic writes, each with a fixed MESSAGE_ID explained in
/// `systemd/bootmedic.catalog`.
public enum JournalMessage: String, CaseIterable, Sendable {
    case agentStarted, agentStopping
    case programmerAdded, programmerRemoved
    case targetFound, targetRemoved
    case jobStarted, stepFinished, notice
    case restored, healthy, failed
    case bootloaderEnumerated, bootloaderMissing
    case resumed, interruptedPending

    /// The 128-bit MESSAGE_ID, as journalctl's MESSAGE_ID= filter takes it.
    public var id: String {
        switch self {
        case .agentStarted: return "6e0dc842e83944b6b3f26d3f2d995104"
        case .agentStopping: return "fbeb05170bcb47b491dbf68f41f16664"
        case .programmerAdded: return "4333a14dda834fe090c34aab938cb21a"
        case .programmerRemoved: return "2811e27351aa44f3bc147fb1c00a397b"
        case .targetFound: return "653ff7d7d1b44943a18bba4e1ca67320"
        case .targetRemoved: return "4c36ec6356a944ce89c9885266772777"
        case .jobStarted: return "7b8975c1f4d442b0b1b32f239cb1b726"
        case .stepFinished: return "2d328a7740814abb9c54ceb76b4cf13f"
        case .notice: return "d0e2cf7617ca41adbad80c08b511a03f"
        case .restored: return "f5b3ae2d1d914a1ebba540e8109c9a9b"
        case .healthy: return "14768e35df1648e98bb07194f302b9a1"
        case .failed: return "d02e1e2fa81049678dae0160f32217eb"
        case .bootloaderEnumerated: return "ee05e6630eb74003a90387372c2d57d3"
        case .bootloaderMissing: return "fe0a65ff8a0849009bb8051787d61f39"
        case .resumed: return "0b0e1a3743224d1bb5979b2782419195"
        case .interruptedPending: return "c4a8d32e3b0f44d9a527d02ada66ce21"
        }
    }

    /// syslog priority: 3 error, 4 warning, 5 notice, 6 info, 7 debug.
    public var priority: Int {
        switch self {
        case .failed, .bootloaderMissing: return 3
        case .notice, .interruptedPending: return 4
        case .restored, .healthy, .resumed, .programmerAdded, .programmerRemoved, .agentStarted, .agentStopping: return 5
        case .stepFinished: return 7
        default: return 6
        }
    }
}

/// One structured journal entry: MESSAGE, MESSAGE_ID, PRIORITY and BOOTMEDIC_* fields.
public struct JournalEntry: Sendable, Equatable {
    public var message: String
    public var kind: JournalMessage
    public var priority: Int
    public var fields: [String: String]

    public init(_ kind: JournalMessage, _ message: String, priority: Int? = nil, fields: [String: String] = [:]) {
        self.kind = kind
        self.message = message
        self.priority = priority ?? kind.priority
        self.fields = fields
    }

    /// All fields as `NAME=value` strings, as sd_journal_sendv takes them.
    public var fieldStrings: [String] {
        ["MESSAGE=\(message)", "MESSAGE_ID=\(kind.id)", "PRIORITY=\(priority)", "SYSLOG_IDENTIFIER=bootmedic"]
            + fields.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    }
}

/// Where entries go: the journal, a console, a test's list.
public protocol JournalWriter: AnyObject, Sendable {
    func write(_ entry: JournalEntry)
}

/// Turns one job's recovery events into journal entries sharing a BOOTMEDIC_JOB id.
public final class JobJournal: RecoveryEventSink {
    public let job: String
    private let writer: JournalWriter
    private var base: [String: String]

    public init(job: String, programmer: ProgrammerIdentity, writer: JournalWriter) {
        self.job = job
        self.writer = writer
        var fields = ["BOOTMEDIC_JOB": job, "BOOTMEDIC_PROGRAMMER": programmer.linkName]
        if let bootloader = programmer.bootloader { fields["BOOTMEDIC_BOOTLOADER"] = bootloader.rawValue }
        if let serial = programmer.serialNumber { fields["BOOTMEDIC_PROGRAMMER_SERIAL"] = serial }
        if let port = programmer.port { fields["BOOTMEDIC_PORT"] = port }
        base = fields
    }

    public func record(_ event: RecoveryEvent) {
        switch event {
        case let .started(identity):
            let port = base["BOOTMEDIC_PORT"] ?? identity.port
            writer.write(JournalEntry(.jobStarted, "job \(job): restore started on \(identity.name)" + (port.map { " at \($0)" } ?? ""), fields: base))
        case let .identified(part, id):
            base["BOOTMEDIC_PART"] = part
            base["BOOTMEDIC_SIGNATURE"] = id
        case let .ruleChosen(rule):
            base["BOOTMEDIC_RULE"] = rule
        case let .resumed(earlier, step, backup):
            base["BOOTMEDIC_RESUMES"] = earlier
            var fields = base
            fields["BOOTMEDIC_STEP"] = step.rawValue
            if let backup { fields["BOOTMEDIC_BACKUP"] = backup }
            writer.write(JournalEntry(.resumed, "job \(job): finishing job \(earlier), which stopped at \(step.rawValue) on this chip; "
                                      + (backup.map { "its backup \($0) stands, no second one is taken" } ?? "it kept no backup"), fields: fields))
        case let .stepFinished(report):
            var fields = base
            fields["BOOTMEDIC_STEP"] = report.step.rawValue
            fields["BOOTMEDIC_BYTES"] = String(report.bytes)
            fields["BOOTMEDIC_DURATION_MS"] = String(report.nanoseconds / 1_000_000)
            if report.step == .backup { fields["BOOTMEDIC_BACKUP"] = report.detail }
            writer.write(JournalEntry(.stepFinished, "job \(job): \(report.step.rawValue): \(report.detail)", fields: fields))
        case let .notice(step, severity, text):
            var fields = base
            fields["BOOTMEDIC_STEP"] = step.rawValue
            writer.write(JournalEntry(.notice, "job \(job): \(text)", priority: severity == .warning ? 4 : 5, fields: fields))
        case let .finished(result):
            var fields = base
            fields["BOOTMEDIC_RESULT"] = result.outcome.rawValue
            fields["BOOTMEDIC_DURATION_MS"] = String(result.totalNanoseconds / 1_000_000)
            if let fuses = result.fusesWritten { fields["BOOTMEDIC_FUSES"] = fuses.description }
            if let backup = result.backupPath ?? result.failure?.backupPath { fields["BOOTMEDIC_BACKUP"] = backup }
            if let failure = result.failure {
                fields["BOOTMEDIC_STEP"] = failure.step.rawValue
                fields["BOOTMEDIC_EXIT_STATUS"] = String(failure.reason.exitCode)
                fields["BOOTMEDIC_REASON"] = failure.reason.description
                if let raise = failure.clockRaise { fields["BOOTMEDIC_ARRIVED_FUSES"] = raise.original.description }
            }
            let kind: JournalMessage = result.outcome == .restored ? .restored : (result.outcome == .healthy ? .healthy : .failed)
            writer.write(JournalEntry(kind, "job \(job): \(result.summary)", fields: fields))
        default:
            break
        }
    }
}
