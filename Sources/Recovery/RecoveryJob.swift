import Foundation
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

    private var result: RecoveryResult
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
        } catch {
            result.outcome = .failed
            result.failure = error
            target.abandon()
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
        if protected {
            guard rule.policies.allowUnlock else {
                throw RecoveryFailure(step: .unlock, reason: .protectionNotAllowed(rule: rule.name), backupPath: nil)
            }
            try saveBackup(plan)
            try step(.unlock) { (context) throws(RecoveryError) in try target.unlock(context) }
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
            try saveBackup(plan)
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
            if let mismatch = identified.mismatch(with: named) { throw mismatch }
            rule = named
        } else {
            guard let matched = rules.firstMatch(for: identified.context(programmer: target.identity)) else {
                throw .noRule(part: identified.name, programmer: target.identity.name)
            }
            rule = matched
        }
        result.rule = rule.name
        sink.record(.ruleChosen(rule.name))
        return rule
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
