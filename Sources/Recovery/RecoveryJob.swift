import FoundationEssentials
import Parts
import Rules
import Transport

/// One restore of one chip through one programmer, whatever the chip:
/// connect → identify → select rule → check → (unlock) → health check → backup → erase → write →
/// verify → finishing steps (EEPROM, fuses, lock) → release.
///
/// The order and its guarantees live here once: nothing destructive happens before the plan passes
/// every check and the old contents are saved; a stop request is honoured only between steps, so a
/// chip is never left mid-page. What each step does on a kind of chip is its ``RestoreTarget``'s.
public final class RecoveryJob {
    public let target: RestoreTarget
    public let rules: RuleSet
    /// A rule to use instead of the first match.
    public var ruleName: String?
    /// Where backups go; nil keeps none (only when the rule allows it).
    public var backups: BackupStore?
    public let sink: RecoveryEventSink
    /// Asked between steps: true stops the job there (a service shutting down). The step in progress
    /// always finishes.
    public var shouldStop: @Sendable () -> Bool = { false }
    /// The clock step durations are measured on: the target's unless set. A rehearsal over a
    /// pseudo-terminal drives the port in real time but reports the simulated chip's time.
    public var stepClock: TimeSource?
    /// Where the job keeps its record from the first destructive step to the end, and looks for an
    /// interrupted restore of the same chip on the same programmer to finish; nil keeps none.
    public var records: RestoreRecords?
    /// The job's id in the record and the journal.
    public var jobID = UUID().uuidString.replacing("-", with: "").lowercased()
    /// Where the programmer sits on the bench (udev's ID_PATH) and its serial number as udev read them,
    /// for the record; the programmer's own account otherwise.
    public var benchPort: String?
    public var benchSerial: String?

    private var result: RecoveryResult
    /// The clock raise once the job has begun it: every later failure names it.
    private var clockRaise: ClockRaise?
    /// The record on disk while the chip is being changed.
    private var record: RestoreRecord?
    private var time: TimeSource { stepClock ?? target.clock }

    public init(target: RestoreTarget, rules: RuleSet, ruleName: String? = nil, backups: BackupStore?, sink: RecoveryEventSink) {
        self.target = target
        self.rules = rules
        self.ruleName = ruleName
        self.backups = backups
        self.sink = sink
        result = RecoveryResult(outcome: .failed, programmer: target.identity)
    }

    /// Runs the restore to its end and returns what happened; failures are in the result, never thrown.
    @discardableResult
    public func run() -> RecoveryResult {
        let start = time.now
        sink.record(.started(target.identity))
        do {
            try perform()
            closeRecord()
        } catch {
            var error = error
            error.clockRaise = clockRaise
            result.outcome = .failed
            result.failure = error
            target.abandon()
            keepRecord(failure: error)
        }
        result.programmer = target.identity
        target.describe(into: &result)
        result.totalNanoseconds = time.elapsed(since: start)
        sink.record(.finished(result))
        return result
    }

    // MARK: The skeleton

    private func perform() throws(RecoveryFailure) {
        try step(.connect) { (context) throws(RecoveryError) in
            let outcome = try target.connect(context)
            result.programmer = target.identity
            return outcome
        }

        let (identified, _) = try step(.identify) { (context) throws(RecoveryError) in
            let found = try target.identify(context)
            target.describe(into: &result)
            sink.record(.identified(part: found.target.name, id: found.target.id))
            return found
        } outcome: { $0.1 }

        let rule = try step(.selectRule) { (_) throws(RecoveryError) in try chooseRule(for: identified) } outcome: { StepOutcome(bytes: 0, $0.name) }

        let (plan, _) = try step(.check) { (context) throws(RecoveryError) in
            let plan: RestorePlan
            do throws(RuleFirmwareError) { plan = RestorePlan(rule: rule, firmware: try rule.loadFirmware()) } catch { throw .firmware(error) }
            let (findings, outcome) = try target.check(plan, context)
            for finding in findings where finding.severity != .error { context.notice(finding.severity, finding.message) }
            let errors = findings.filter { $0.severity == .error }
            if !errors.isEmpty { throw .refused(errors) }
            if !rule.policies.backup, backups == nil {
                context.notice(.warning, "the rule turns backups off: the chip's current contents will not be saved")
            }
            return (plan, outcome)
        } outcome: { $0.1 }

        let protected: Bool
        do { protected = try target.isReadProtected() } catch {
            throw RecoveryFailure(step: .check, reason: error, backupPath: nil)
        }
        let interrupted = try interruptedRestore(of: identified)
        if let interrupted {
            // The chip is half-written: its health is beside the point, and a backup now would save the
            // half-written state. The first job's backup stands.
            result.backupPath = interrupted.backup
            result.resumed = interrupted.job
            sink.record(.resumed(job: interrupted.job, step: interrupted.step, backup: interrupted.backup))
        }
        if protected {
            guard rule.policies.allowUnlock else {
                throw RecoveryFailure(step: .unlock, reason: .protectionNotAllowed(rule: rule.name), backupPath: result.backupPath)
            }
            if interrupted == nil { try saveBackup(plan) }
            try openRecord(plan, identified, resuming: interrupted, at: .unlock)
            try step(.unlock) { (context) throws(RecoveryError) in try target.unlock(context) }
        } else if let interrupted {
            try openRecord(plan, identified, resuming: interrupted, at: .erase)
        } else {
            let verdict = try step(.healthCheck) { (context) throws(RecoveryError) in try target.healthCheck(plan, context) } outcome: { verdict in
                switch verdict {
                case let .healthy(read, detail): return StepOutcome(bytes: read, detail)
                case let .needsRestore(read, reason): return StepOutcome(bytes: read, "needs a restore: \(reason)")
                }
            }
            if case .healthy = verdict {
                try step(.release) { (context) throws(RecoveryError) in try target.release(context) }
                result.outcome = .healthy
                return
            }
            if plan.rule.policies.raiseClock, let raise = target.clockRaise(for: plan) {
                clockRaise = raise
                try step(.raiseClock) { (context) throws(RecoveryError) in try target.raiseClock(raise, context) }
            }
            try saveBackup(plan)
            try openRecord(plan, identified, resuming: nil, at: .erase)
        }

        try step(.erase) { (context) throws(RecoveryError) in try target.erase(plan, context) }
        try step(.writeFlash) { (context) throws(RecoveryError) in try target.write(plan, context) }
        try step(.verifyFlash) { (context) throws(RecoveryError) in try target.verify(plan, context) }
        for finishing in target.finishingSteps(plan, backup: result.backupPath) {
            try step(finishing.step) { (context) throws(RecoveryError) in try finishing.run(context) }
        }
        try step(.release) { (context) throws(RecoveryError) in try target.release(context) }
        result.outcome = .restored
    }

    /// The backup, when the rule keeps one and a store is given: always before the first destructive step.
    private func saveBackup(_ plan: RestorePlan) throws(RecoveryFailure) {
        guard plan.rule.policies.backup, let backups else { return }
        try step(.backup) { (context) throws(RecoveryError) in
            let (path, bytes) = try target.backup(plan, to: backups, context)
            result.backupPath = path
            return StepOutcome(bytes: bytes, path)
        }
    }

    private func chooseRule(for identified: IdentifiedTarget) throws(RecoveryError) -> Rule {
        let rule: Rule
        if let name = ruleName {
            guard let named = rules.rule(named: name) else { throw .noSuchRule(name) }
            if let mismatch = identified.mismatch(with: named, programmer: target.identity) { throw mismatch }
            rule = named
        } else {
            guard let matched = rules.firstMatch(for: identified.context(programmer: target.identity)) else {
                throw .noRule(part: identified.nameForRules, programmer: target.identity.name)
            }
            rule = matched
        }
        result.rule = rule.name
        sink.record(.ruleChosen(rule.name))
        return rule
    }

    // MARK: The record of a restore in progress

    private func interruptedRestore(of identified: IdentifiedTarget) throws(RecoveryFailure) -> RestoreRecord? {
        guard let records else { return nil }
        do { return try records.interrupted(programmer: recordIdentity, target: identified.id) } catch {
            throw RecoveryFailure(step: .check, reason: .backupFailed(error.description), backupPath: nil)
        }
    }

    /// Writes the record before the first destructive step; a record that cannot be written stops the
    /// job there, with nothing erased.
    private func openRecord(_ plan: RestorePlan, _ identified: IdentifiedTarget, resuming earlier: RestoreRecord?, at step: RecoveryStep) throws(RecoveryFailure) {
        guard let records else { return }
        let now = Date()
        let identity = recordIdentity
        let opened = RestoreRecord(job: jobID, resumes: earlier?.job, programmer: identity.linkName, programmerSerial: identity.serialNumber,
                                   port: identity.port, part: identified.name, target: identified.id, rule: plan.rule.name,
                                   bootloaderSHA256: plan.firmware.sha256.description, backup: result.backupPath,
                                   step: step, started: earlier?.started ?? now, updated: now)
        do { try records.write(opened, programmer: identity) } catch {
            throw RecoveryFailure(step: step, reason: .backupFailed("\(error)"), backupPath: result.backupPath)
        }
        record = opened
    }

    /// Moves the record to `step`. A failed update is a warning: the record still names the chip, and a
    /// resumption starts again from the erase whatever step it names.
    private func advanceRecord(to step: RecoveryStep) {
        guard let records, var current = record else { return }
        current.step = step
        current.updated = Date()
        record = current
        do { try records.write(current, programmer: recordIdentity) } catch {
            sink.record(.notice(step, .warning, error.description))
        }
    }

    /// The chip is restored: the record goes.
    private func closeRecord() {
        guard let records, let current = record else { return }
        record = nil
        do { try records.remove(programmer: recordIdentity, target: current.target) } catch {
            sink.record(.notice(.release, .warning, error.description))
        }
    }

    /// The job failed after changing the chip: the record stays, saying why, for the next job to finish.
    private func keepRecord(failure: RecoveryFailure) {
        guard let records, var current = record else { return }
        current.failure = failure.description
        current.updated = Date()
        try? records.write(current, programmer: recordIdentity)
        sink.record(.notice(failure.step, .warning, "the chip was left part-way; the next job on \(target.identity.name) that finds it finishes the restore (record \(records.path(programmer: recordIdentity, target: current.target)))"))
    }

    /// The programmer as the record names it: the bench's socket and serial where known.
    private var recordIdentity: ProgrammerIdentity {
        var identity = target.identity
        identity.port = benchPort ?? identity.port
        identity.serialNumber = benchSerial ?? identity.serialNumber
        return identity
    }

    // MARK: Steps

    /// Runs one step: emits its start, its finish with duration and bytes, or turns its error into a failure.
    @discardableResult
    private func step<T>(_ step: RecoveryStep, _ body: (StepContext) throws(RecoveryError) -> T,
                         outcome: (T) -> StepOutcome) throws(RecoveryFailure) -> T {
        if shouldStop() && step != .release {
            let after = result.steps.last.map { " (after \($0.step.rawValue) completed)" } ?? ""
            throw RecoveryFailure(step: step, reason: .cancelled("the service is stopping; stopped before \(step.title)" + after), backupPath: result.backupPath)
        }
        sink.record(.stepStarted(step))
        advanceRecord(to: step)
        let start = time.now
        do {
            let value = try body(StepContext(step: step, sink: sink))
            let done = outcome(value)
            let report = StepReport(step: step, nanoseconds: time.elapsed(since: start), bytes: done.bytes, detail: done.detail)
            result.steps.append(report)
            sink.record(.stepFinished(report))
            return value
        } catch {
            throw RecoveryFailure(step: step, reason: target.explain(error, during: step), backupPath: result.backupPath)
        }
    }

    private func step(_ step: RecoveryStep, _ body: (StepContext) throws(RecoveryError) -> StepOutcome) throws(RecoveryFailure) {
        try self.step(step, body, outcome: { $0 })
    }
}
