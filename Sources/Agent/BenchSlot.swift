import AVRISP
import BenchModel
import Foundation
import Recovery
import Rules
import STLink
import Transport

/// A programmer on the bench, and how to open it.
public struct BenchProgrammer: Sendable {
    /// Stable key: the udev syspath, or a virtual bench's name.
    public let id: String
    public let kind: ProgrammerKind
    public let serial: String?
    /// udev's ID_PATH: the bench's USB socket.
    public let port: String?
    public let open: @Sendable () throws -> BenchConnection

    public init(id: String, kind: ProgrammerKind, serial: String?, port: String?, open: @escaping @Sendable () throws -> BenchConnection) {
        self.id = id
        self.kind = kind
        self.serial = serial
        self.port = port
        self.open = open
    }
}

/// An opened programmer.
public enum BenchConnection {
    case isp(ISPProgrammer)
    case stlink(STLink)

    func close() {
        switch self {
        case let .isp(programmer): programmer.close()
        case let .stlink(link): link.disconnect(); link.device.close()
        }
    }
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

/// One programmer's loop, on its own thread: look for a target at a bounded rate, restore it, wait until
/// it is removed, and again. Slots share nothing but the rules and the journal writer.
public final class BenchSlot: @unchecked Sendable {
    public let programmer: BenchProgrammer
    private let rules: RuleSet
    private let journal: JournalWriter
    private let backups: BackupStore?
    private let pollInterval: Double
    private let jobNumber: @Sendable () -> String
    private let lock = NSLock()
    private var _state = SlotState.idle
    private var cancelled = false
    private let finished = DispatchSemaphore(value: 0)
    private var thread: Thread?
    /// Results of the jobs run, in order (for tests and status).
    private var _outcomes: [RecoveryOutcome] = []
    /// Whether a USB device with these ids is on the bus (for `expect_usb`).
    var usbPresence: @Sendable (USBID) -> Bool = { _ in false }
    var expectUSBTimeout: Double = 10

    public init(programmer: BenchProgrammer, rules: RuleSet, journal: JournalWriter, backups: BackupStore?, pollInterval: Double,
                jobNumber: @escaping @Sendable () -> String) {
        self.programmer = programmer
        self.rules = rules
        self.journal = journal
        self.backups = backups
        self.pollInterval = pollInterval
        self.jobNumber = jobNumber
    }

    public var state: SlotState { lock.withLock { _state } }
    public var outcomes: [RecoveryOutcome] { lock.withLock { _outcomes } }
    private var isCancelled: Bool { lock.withLock { cancelled } }

    public func start() {
        let thread = Thread { [self] in
            loop()
            lock.withLock { _state = .stopped }
            finished.signal()
        }
        thread.name = "bootmedic slot \(programmer.id)"
        self.thread = thread
        thread.start()
    }

    /// Asks the slot to stop at its next safe point (between steps) and waits until it has.
    public func stop() {
        lock.withLock { cancelled = true }
        if thread != nil { finished.wait(); thread = nil }
    }

    private func set(_ state: SlotState) { lock.withLock { _state = state } }

    private var fields: [String: String] {
        var f = ["BOOTMEDIC_PROGRAMMER": programmer.kind.rawValue]
        if let serial = programmer.serial { f["BOOTMEDIC_PROGRAMMER_SERIAL"] = serial }
        if let port = programmer.port { f["BOOTMEDIC_PORT"] = port }
        return f
    }

    private func loop() {
        // The connection stays open between looks: reopening would reset an Arduino through DTR each time.
        var connection: BenchConnection?
        defer { connection?.close() }
        while !isCancelled {
            if connection == nil {
                connection = try? programmer.open()
                // The programmer went away or is busy: the agent removes the slot when udev says so.
                if connection == nil { sleep(pollInterval); continue }
            }
            switch look(connection!) {
            case .broken:
                connection?.close()
                connection = nil
                sleep(pollInterval)
                continue
            case .absent:
                sleep(pollInterval)
                continue
            case .present:
                break
            }
            // The look may have found this board at a slower SCK than it takes: it settled on the last
            // board's speed, or the board was attached while it was stepping down. The job finds its own.
            if case let .isp(isp)? = connection { isp.forgetTargetSpeed() }
            journal.write(JournalEntry(.targetFound, "\(programmer.kind.description) at \(programmer.port ?? programmer.id): a board is on the cable", fields: fields))
            let job = jobNumber()
            set(.restoring(job: job))
            let result = restore(connection!, job: job)
            lock.withLock { _outcomes.append(result.outcome) }
            if result.outcome == .restored, let expected = result.rule.flatMap(rules.rule(named:))?.expectUSB {
                confirmEnumeration(expected, job: job)
            }
            set(.waitingForRemoval(result: result.outcome.rawValue))
            // One board is never flashed twice: wait until it leaves the cable.
            while !isCancelled {
                let seen = look(connection!)
                if seen == .present { sleep(pollInterval); continue }
                if seen == .broken { connection?.close(); connection = nil }
                break
            }
            if !isCancelled {
                journal.write(JournalEntry(.targetRemoved, "\(programmer.kind.description) at \(programmer.port ?? programmer.id): the board was removed", fields: fields))
            }
            set(.idle)
        }
    }

    /// After a restore: waits (bounded) for the bootloader the rule expects to show up on USB.
    private func confirmEnumeration(_ id: USBID, job: String) {
        var f = fields
        f["BOOTMEDIC_JOB"] = job
        f["BOOTMEDIC_USB_ID"] = id.description
        let deadline = Date().addingTimeInterval(expectUSBTimeout)
        while !isCancelled, Date() < deadline {
            if usbPresence(id) {
                journal.write(JournalEntry(.bootloaderEnumerated, "job \(job): the bootloader enumerated as \(id)", fields: f))
                return
            }
            Thread.sleep(forTimeInterval: min(0.1, pollInterval))
        }
        guard !isCancelled else { return }   // the programmer left; the bench moved on, nothing to say
        journal.write(JournalEntry(.bootloaderMissing, "job \(job): no USB device \(id) appeared within \(Int(expectUSBTimeout)) s; is the board's USB connected?", fields: f))
    }

    enum Look { case present, absent, broken }

    /// Whether a target answers (programming enable / an SWD IDCODE), or the programmer itself failed.
    private func look(_ connection: BenchConnection) -> Look {
        switch connection {
        case let .isp(isp):
            do {
                try isp.enterProgrammingMode()
            } catch {
                if case .noTarget = error { return .absent }
                return .broken
            }
            defer { isp.leaveProgrammingMode() }
            guard let signature = try? isp.readSignature() else { return .broken }
            return signature.meansNoTarget ? .absent : .present
        case let .stlink(link):
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

    private func restore(_ connection: BenchConnection, job: String) -> RecoveryResult {
        switch connection {
        case let .isp(isp):
            var identity = isp.identity
            identity.port = programmer.port ?? identity.port
            let sink = JobJournal(job: job, programmer: identity, writer: journal)
            let recovery = RecoveryJob(programmer: isp, rules: rules, backups: backups, sink: sink)
            recovery.shouldStop = { [weak self] in self?.isCancelled ?? true }
            return recovery.run()
        case let .stlink(link):
            let identity = ProgrammerIdentity(kind: .stlink, name: link.name, serialNumber: programmer.serial, port: programmer.port)
            let sink = JobJournal(job: job, programmer: identity, writer: journal)
            return STM32RecoveryJob(link: link, rules: rules, backups: backups, sink: sink).run()
        }
    }

    private func sleep(_ seconds: Double) {
        var remaining = seconds
        while remaining > 0, !isCancelled {
            let slice = min(remaining, 0.05)
            Thread.sleep(forTimeInterval: slice)
            remaining -= slice
        }
    }
}
