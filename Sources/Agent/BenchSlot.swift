import FoundationEssentials
import Programmers
import Recovery
import Rules
import Synchronization
import Transport

/// A programmer on the bench, and how to open it.
public struct BenchProgrammer: Sendable {
    /// Stable key: the udev syspath, or a virtual bench's name.
    public let id: String
    public let kind: ProgrammerKind
    public let serial: String?
    /// udev's ID_PATH: the bench's USB socket.
    public let port: String?
    public let open: @Sendable () throws -> ProgrammerConnection

    public init(id: String, kind: ProgrammerKind, serial: String?, port: String?, open: @escaping @Sendable () throws -> ProgrammerConnection) {
        self.id = id
        self.kind = kind
        self.serial = serial
        self.port = port
        self.open = open
    }

    /// The journal fields that name this programmer.
    var fields: [String: String] {
        var f = ["BOOTMEDIC_PROGRAMMER": kind.rawValue]
        if let serial { f["BOOTMEDIC_PROGRAMMER_SERIAL"] = serial }
        if let port { f["BOOTMEDIC_PORT"] = port }
        return f
    }

    /// "USBasp at pci-0000:00:14.0-usb-0:2"
    var place: String { "\(kind.description) at \(port ?? id)" }
}

/// What a slot is doing, for STATUS= and `bootmedic status`.
public enum SlotState: Sendable, Equatable, CustomStringConvertible {
    case idle
    case restoring(job: String)
    case waitingForRemoval(result: String)
    case stopped

    public var description: String {
        switch self {
        case .idle: return "waiting for a board"
        case let .restoring(job): return "restoring (job \(job))"
        case let .waitingForRemoval(result): return "\(result); remove the board"
        case .stopped: return "stopped"
        }
    }
}

/// What a slot needs from the agent, fixed for its life.
struct SlotContext: Sendable {
    let rules: RuleSet
    let journal: JournalWriter
    let backups: BackupStore?
    let records: RestoreRecords?
    let pollInterval: Double
    let expectUSBTimeout: Double
    let usbPresence: @Sendable (USBID) -> Bool
    let bootloaderOnBus: @Sendable (USBID) -> BenchBootloader?
}

/// One programmer's loop, on its own thread: look for a target at a bounded rate, restore it, wait until
/// it is removed, and again. Slots share nothing but the rules and the journal writer.
public final class BenchSlot: Sendable {
    public let programmer: BenchProgrammer
    private let context: SlotContext
    private struct State {
        var slot = SlotState.idle
        var outcomes: [RecoveryOutcome] = []
        /// The programmer left the bench (rather than the agent stopping): say so when the loop ends.
        var unplugged = false
        /// A stop was asked for, perhaps before the thread existed.
        var stopRequested = false
    }
    private let shared = Mutex(State())
    private let worker: Mutex<WorkerThread?> = Mutex(nil)

    init(programmer: BenchProgrammer, context: SlotContext) {
        self.programmer = programmer
        self.context = context
    }

    public var state: SlotState { shared.withCheckedLock { $0.slot } }
    /// Results of the jobs run, in order (for tests and status).
    public var outcomes: [RecoveryOutcome] { shared.withCheckedLock { $0.outcomes } }

    func start() {
        worker.withCheckedLock { worker in
            worker = WorkerThread(name: "slot \(programmer.port ?? programmer.id)") { [self] thread in
                loop(thread)
                let unplugged = shared.withCheckedLock { state in
                    state.slot = .stopped
                    return state.unplugged
                }
                // Written by the slot itself, so it is the last word on this programmer in the journal.
                if unplugged {
                    context.journal.write(JournalEntry(.programmerRemoved, "\(programmer.kind.description) unplugged from \(programmer.port ?? programmer.id)",
                                                       fields: programmer.fields))
                }
            }
            // The programmer may have left between the slot's creation and now.
            if shared.withCheckedLock({ $0.stopRequested }) { worker?.requestStop() }
        }
    }

    /// The programmer left: the slot stops at its next safe point and journals the removal; does not wait.
    func unplug() {
        shared.withCheckedLock { $0.unplugged = true }
        requestStop()
    }

    /// Asks the slot to stop at its next safe point (between steps), whether or not it has started.
    func requestStop() {
        shared.withCheckedLock { $0.stopRequested = true }
        worker.withCheckedLock { $0?.requestStop() }
    }

    /// Waits until the slot's loop has ended.
    func join() { worker.withCheckedLock { $0 }?.join() }

    /// Whether the loop has ended, without waiting.
    var hasEnded: Bool { worker.withCheckedLock { $0 }?.join(timeout: 0) ?? true }

    private func set(_ slot: SlotState) { shared.withCheckedLock { $0.slot = slot } }

    private func loop(_ thread: WorkerThread) {
        // The connection stays open between looks: reopening would reset an Arduino through DTR each time.
        var connection: ProgrammerConnection?
        defer { connection?.close() }
        while !thread.isStopRequested {
            guard let open = connection ?? (try? programmer.open()) else {
                // The programmer went away or is busy: the agent removes the slot when udev says so.
                thread.sleep(context.pollInterval)
                continue
            }
            connection = open
            switch look(open) {
            case .broken:
                open.close()
                connection = nil
                thread.sleep(context.pollInterval)
                continue
            case .absent:
                thread.sleep(context.pollInterval)
                continue
            case .present:
                break
            }
            // The look may have found this board at a slower SCK than it takes: it settled on the last
            // board's speed, or the board was attached while it was stepping down. The job finds its own.
            if case let .isp(isp) = open { isp.forgetTargetSpeed() }
            context.journal.write(JournalEntry(.targetFound, "\(programmer.place): a board is on the cable", fields: programmer.fields))
            let job = UUID().uuidString.replacing("-", with: "").lowercased()
            set(.restoring(job: job))
            let result = restore(open, job: job, thread: thread)
            shared.withCheckedLock { $0.outcomes.append(result.outcome) }
            if result.outcome == .restored, let rule = result.rule.flatMap(context.rules.rule(named:)), let expected = rule.expectUSB,
               confirmEnumeration(expected, job: job, thread: thread), rule.application != nil {
                // The whole bench in one job: the restored bootloader now flashes the rule's application.
                if let flashed = flashApplication(through: expected, rule: rule, job: job, thread: thread) {
                    shared.withCheckedLock { $0.outcomes.append(flashed.outcome) }
                }
            }
            set(.waitingForRemoval(result: result.outcome.rawValue))
            // One board is never flashed twice: wait until it leaves the cable.
            while !thread.isStopRequested {
                let seen = look(open)
                if seen == .present { thread.sleep(context.pollInterval); continue }
                if seen == .broken { open.close(); connection = nil }
                break
            }
            if !thread.isStopRequested {
                context.journal.write(JournalEntry(.targetRemoved, "\(programmer.place): the board was removed", fields: programmer.fields))
            }
            set(.idle)
        }
    }

    /// After a restore: waits (bounded) for the bootloader the rule expects to show up on USB; whether it did.
    private func confirmEnumeration(_ id: USBID, job: String, thread: WorkerThread) -> Bool {
        var fields = programmer.fields
        fields["BOOTMEDIC_JOB"] = job
        fields["BOOTMEDIC_USB_ID"] = id.description
        let deadline = Date().addingTimeInterval(context.expectUSBTimeout)
        while !thread.isStopRequested, Date() < deadline {
            if context.usbPresence(id) {
                context.journal.write(JournalEntry(.bootloaderEnumerated, "job \(job): the bootloader enumerated as \(id)", fields: fields))
                return true
            }
            thread.sleep(min(0.1, context.pollInterval))
        }
        guard !thread.isStopRequested else { return false }   // the programmer left; the bench moved on, nothing to say
        context.journal.write(JournalEntry(.bootloaderMissing, "job \(job): no USB device \(id) appeared within \(Int(context.expectUSBTimeout)) s; is the board's USB connected?", fields: fields))
        return false
    }

    /// The restored board's bootloader (its tty may follow its USB device by a moment: up to 3 s) flashes
    /// the rule's application as the same job.
    private func flashApplication(through id: USBID, rule: Rule, job: String, thread: WorkerThread) -> RecoveryResult? {
        let deadline = Date().addingTimeInterval(3)
        var board = context.bootloaderOnBus(id)
        while board == nil, !thread.isStopRequested, Date() < deadline {
            thread.sleep(0.05)
            board = context.bootloaderOnBus(id)
        }
        guard let board else {
            var fields = programmer.fields
            fields["BOOTMEDIC_JOB"] = job
            fields["BOOTMEDIC_USB_ID"] = id.description
            if !thread.isStopRequested {
                context.journal.write(JournalEntry(.notice, "job \(job): \(id) enumerated, but is no bootloader bootmedic flashes through; rule '\(rule.name)' has its application left unflashed", priority: 4, fields: fields))
            }
            return nil
        }
        return board.flash(job: job, ruleName: rule.name, rules: context.rules, backups: context.backups, journal: context.journal) { thread.isStopRequested }
    }

    enum Look { case present, absent, broken }

    /// Whether a target answers (programming enable / an SWD IDCODE), or the programmer itself failed.
    private func look(_ connection: ProgrammerConnection) -> Look {
        switch connection {
        case let .isp(isp):
            // The cheap look first (one Programming Enable at the slowest SCK); only a chip that answers
            // it costs the walk down the SCKs and a signature read.
            do {
                guard try isp.targetAnswers() else { return .absent }
                try isp.enterProgrammingMode()
            } catch {
                if case .noTarget = error { return .absent }
                return .broken
            }
            defer { isp.leaveProgrammingMode() }
            guard let signature = try? isp.readSignature() else { return .broken }
            return signature.meansNoTarget ? .absent : .present
        case let .swd(link):
            defer { link.disconnect() }
            do {
                _ = try link.connect()
                return .present
            } catch {
                switch error {
                case .noTarget, .noPower: return .absent
                default: return .broken
                }
            }
        }
    }

    private func restore(_ connection: ProgrammerConnection, job: String, thread: WorkerThread) -> RecoveryResult {
        var identity = connection.identity
        identity.port = programmer.port ?? identity.port
        identity.serialNumber = programmer.serial ?? identity.serialNumber
        let sink = JobJournal(job: job, programmer: identity, writer: context.journal)
        let recovery = RecoveryJob(target: connection.restoreTarget, rules: context.rules, backups: context.backups, sink: sink)
        recovery.records = context.records
        recovery.jobID = job
        recovery.benchPort = programmer.port
        recovery.benchSerial = programmer.serial
        recovery.shouldStop = { thread.isStopRequested }
        return recovery.run()
    }
}
