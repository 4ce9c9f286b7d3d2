import BenchModel
import FoundationEssentials
import FirmwareImage
import Parts
import STLink
import Rules
import Transport

/// What a rule asks of the target in front of the programmer: built once the target is identified and
/// the rule chosen, before anything is checked.
public struct RestorePlan: Sendable {
    public let rule: Rule
    public let firmware: PreparedFirmware

    /// The bytes to write: the bootloader, with the application if the rule has one.
    public var image: MemoryImage { firmware.image }
}

/// What a step did: the bytes it moved and a short result for people.
public struct StepOutcome: Sendable {
    public let bytes: Int
    public let detail: String

    public init(bytes: Int, _ detail: String) {
        self.bytes = bytes
        self.detail = detail
    }
}

/// What the health check found.
public enum HealthVerdict: Sendable {
    case healthy(bytesRead: Int, detail: String)
    case needsRestore(bytesRead: Int, reason: String)
}

/// How a step reports progress and notices while it runs.
public struct StepContext {
    public let step: RecoveryStep
    let sink: RecoveryEventSink

    public func progress(done: Int, total: Int) { sink.record(.progress(step, done: done, total: total)) }
    public func notice(_ severity: Severity, _ text: String) { sink.record(.notice(step, severity, text)) }
}

/// A chip behind a programmer, as the one restore skeleton (``RecoveryJob``) drives it: an AVR over ISP,
/// an STM32 over SWD, and later a board through its own bootloader. The skeleton owns the order and the
/// safety guarantees — nothing destructive before the plan is checked and the old contents are saved —
/// and a target only knows how to do each step on its kind of chip.
public protocol RestoreTarget: AnyObject {
    /// What the programmer says about itself (fuller once connected).
    var identity: ProgrammerIdentity { get }
    /// The clock waits and step durations go by.
    var clock: TimeSource { get }

    /// Opens the link to the chip (programming mode, SWD).
    func connect(_ context: StepContext) throws(RecoveryError) -> StepOutcome
    /// Reads what the chip is.
    func identify(_ context: StepContext) throws(RecoveryError) -> (target: IdentifiedTarget, outcome: StepOutcome)
    /// Reads what the plan needs to know of the chip (current fuses, flash size) and returns the plan's
    /// findings for this chip; an error finding refuses the plan. Nothing is written.
    func check(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> (findings: [Finding], outcome: StepOutcome)
    /// Whether the chip hides its memory in a way only an unlock (which destroys it) removes.
    func isReadProtected() throws(RecoveryError) -> Bool
    /// Whether the chip already holds what the plan would write; reads as little as it can.
    func healthCheck(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> HealthVerdict
    /// The clock raise this plan allows on this chip, or nil: a change the rule's final settings make
    /// anyway, made first so that backup, write and verify run at a faster SCK. Nothing is written.
    func clockRaise(for plan: RestorePlan) -> ClockRaise?
    /// Makes the raise, re-enters programming mode so the chip latches it, and checks that the same chip
    /// answers with the raised fuse.
    func raiseClock(_ raise: ClockRaise, _ context: StepContext) throws(RecoveryError) -> StepOutcome
    /// Saves what the chip holds (as much as it shows) and returns the backup's folder.
    func backup(_ plan: RestorePlan, to store: BackupStore, _ context: StepContext) throws(RecoveryError) -> (path: String, bytes: Int)
    /// Removes read protection; allowed only by the rule, and it erases the chip.
    func unlock(_ context: StepContext) throws(RecoveryError) -> StepOutcome
    func erase(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> StepOutcome
    func write(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> StepOutcome
    func verify(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> StepOutcome
    /// The steps after the flash is verified (EEPROM, fuses, lock), in order; `backup` is the saved
    /// contents, if any.
    func finishingSteps(_ plan: RestorePlan, backup: String?) -> [FinishingStep]
    /// Lets the chip run.
    func release(_ context: StepContext) throws(RecoveryError) -> StepOutcome
    /// Clean-up after a failure: leaves the chip and the programmer as a person expects to find them.
    func abandon()
    /// A step's error as the technician should hear it (a busy chip may be a vanished one).
    func explain(_ error: RecoveryError, during step: RecoveryStep) -> RecoveryError
    /// Fills in what this kind of target knows for the result (part, signature, fuses written, …).
    func describe(into result: inout RecoveryResult)
}

/// One step after the flash write, with its body.
public struct FinishingStep {
    public let step: RecoveryStep
    public let run: (StepContext) throws(RecoveryError) -> StepOutcome

    public init(_ step: RecoveryStep, _ run: @escaping (StepContext) throws(RecoveryError) -> StepOutcome) {
        self.step = step
        self.run = run
    }
}

extension RestoreTarget {
    public func explain(_ error: RecoveryError, during step: RecoveryStep) -> RecoveryError { error }
    public func clockRaise(for plan: RestorePlan) -> ClockRaise? { nil }
    public func raiseClock(_ raise: ClockRaise, _ context: StepContext) throws(RecoveryError) -> StepOutcome {
        StepOutcome(bytes: 0, "nothing to raise")
    }
}

/// One fuse byte changed before the backup to make the chip run faster — only ever to a value the
/// rule's final fuses also give the clock (an AVR's CKDIV8 cleared on the oscillator it already runs on),
/// so the board is never left less reachable than it came.
public struct ClockRaise: Sendable, Equatable {
    public let byte: FuseByte
    /// The byte as the chip arrived with it, and as the raise leaves it.
    public let from: UInt8
    public let to: UInt8
    /// What changes, for people ("CKDIV8 cleared: 16 MHz crystal instead of 2 MHz").
    public let detail: String
    /// All the fuses the chip arrived with, as they were read ("L 0x5E H 0x99 E 0xF3").
    public let original: FuseSet

    public init(byte: FuseByte, from: UInt8, to: UInt8, detail: String, original: FuseSet) {
        self.byte = byte
        self.from = from
        self.to = to
        self.detail = detail
        self.original = original
    }
}

/// What a target turned out to be.
public enum IdentifiedTarget: Sendable {
    case avr(AVRPart, Signature)
    case stm32(STM32Target)

    /// The part's name for people and the journal ("ATmega32U4", "STM32F10x medium-density").
    public var name: String {
        switch self {
        case let .avr(part, _): return part.name
        case let .stm32(target): return target.partName
        }
    }

    /// The name, with how a rule names a clone ("CKS32F103 (a rule names it \"cks32f103\" or \"stm32f1\";
    /// the ST line names are for ST's own chips)"), for a "no rule" message.
    public var nameForRules: String {
        guard case let .stm32(target) = self, !target.variant.isGenuine else { return name }
        let family = "\"\(target.chip.family.rawValue)\""
        guard STM32Variant.namedClones.contains(target.variant) else { return "\(name) (only the family name \(family) matches a chip no maker's entry describes)" }
        return "\(name) (a rule names it \"\(target.variant.id)\" or \(family); the ST line names are for ST's own chips)"
    }

    /// What the journal's BOOTMEDIC_SIGNATURE holds: an AVR's signature, an STM32's chip id.
    public var id: String {
        switch self {
        case let .avr(_, signature): return signature.description
        case let .stm32(target): return String(cFormat: "0x%03X", target.chipID)
        }
    }

    /// What rules match on, with the programmer the target sits behind.
    public func context(programmer: ProgrammerIdentity) -> TargetContext {
        switch self {
        case let .avr(part, signature):
            return TargetContext(avrPart: part, signature: signature, programmer: programmer.kind, bootloader: programmer.bootloader,
                                 usb: programmer.usb, serial: programmer.serialNumber, port: programmer.port)
        case let .stm32(target):
            return TargetContext(chipID: target.chipID, stm32Variant: target.variant.id, programmer: programmer.kind, bootloader: programmer.bootloader,
                                 usb: programmer.usb, serial: programmer.serialNumber, port: programmer.port)
        }
    }

    /// Why a rule named on the command line is not for this target, or nil when it is.
    public func mismatch(with rule: Rule, programmer: ProgrammerIdentity) -> RecoveryError? {
        let signature: Signature
        if case let .avr(_, found) = self { signature = found } else { signature = Signature(0, 0, 0) }
        let parts = rule.parts
        if parts.contains(where: { $0.covers(context(programmer: programmer)) }) { return nil }
        if parts.isEmpty, case .avr = self { return nil }
        let expected: String
        switch parts.first {
        case nil: expected = "another part"
        case .stm32? where !isSTM32: expected = "an STM32"
        default: expected = parts.map(\.description).joined(separator: " or ")
        }
        return .wrongPart(signature: signature, found: name, rule: rule.name, expected: expected)
    }

    private var isSTM32: Bool {
        if case .stm32 = self { return true }
        return false
    }
}
