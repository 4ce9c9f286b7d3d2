import AVRISP
import BenchModel
import Bootloaders
import Parts
import Rules
import STLink

/// Why a restore stopped, and at which step; `backup` says where the chip's old contents are.
public struct RecoveryFailure: Error, Sendable, CustomStringConvertible {
    public let step: RecoveryStep
    public let reason: RecoveryError
    public let backupPath: String?
    /// The clock raise the job had begun before it failed, if any: the chip's fuses are no longer quite
    /// the ones it arrived with.
    public var clockRaise: ClockRaise?

    public init(step: RecoveryStep, reason: RecoveryError, backupPath: String?, clockRaise: ClockRaise? = nil) {
        self.step = step
        self.reason = reason
        self.backupPath = backupPath
        self.clockRaise = clockRaise
    }

    public var description: String {
        var text = reason.description
        if let raise = clockRaise {
            let change = "the \(raise.byte.rawValue) fuse from " + String(cFormat: "0x%02X to 0x%02X", raise.from, raise.to) + " (\(raise.detail))"
            text += step == .raiseClock
                ? "; it failed while changing \(change): the chip holds one of the two values, its memory is untouched"
                : "; before that the job had changed \(change): the chip's memory was untouched then, and its original fuses are \(raise.original)"
        }
        if let backupPath { text += " (the chip's previous contents are saved in \(backupPath))" }
        return text
    }
}

/// The reasons a restore can stop, each with words a technician can act on.
public enum RecoveryError: Error, Sendable, CustomStringConvertible {
    case programmer(ISPError)
    /// The signature reads as all ones or all zeros: MISO is not driven by a chip.
    case noTargetSignature(Signature)
    case unknownSignature(Signature)
    case noRule(part: String, programmer: String)
    case noSuchRule(String)
    /// The chip is not the part the chosen rule is for.
    case wrongPart(signature: Signature, found: String, rule: String, expected: String)
    case firmware(RuleFirmwareError)
    /// The plan failed a static check; nothing was erased.
    case refused([Finding])
    case backupFailed(String)
    case verifyFailed(address: UInt32, expected: UInt8, actual: UInt8)
    /// The EEPROM read back differs from what was written.
    case eepromVerifyFailed(address: UInt32, expected: UInt8, actual: UInt8)
    /// The target stopped answering during the write.
    case targetVanished(step: RecoveryStep, detail: String)
    case fusesDidNotTake([FuseMismatch])
    case lockDidNotTake(expected: UInt8, actual: UInt8)
    case cancelled(String)
    case stm32(STM32Error)
    /// The STM32 is read-protected and the rule does not allow removing the protection.
    case protectionNotAllowed(rule: String)
    /// The board's own bootloader failed or went away.
    case bootloader(BootloaderError)

    public var description: String {
        switch self {
        case let .programmer(error): return error.description
        case let .noTargetSignature(signature):
            return "the signature reads \(signature): no chip is driving MISO; check the ISP cable and the target's power"
        case let .unknownSignature(signature):
            return "signature \(signature) belongs to no part bootmedic knows"
        case let .noRule(part, programmer):
            return "no rule matches \(part) on \(programmer); add one to the rules file or name one with --rule"
        case let .noSuchRule(name):
            return "the rules file has no rule named '\(name)'"
        case let .wrongPart(signature, found, rule, expected):
            // An STM32 has no signature (its chip id and maker are in the name).
            let chip = signature == Signature(0, 0, 0) ? "the chip is \(found)" : "the chip's signature \(signature) is \(found)"
            return "\(chip), but rule '\(rule)' is for \(expected); nothing was written"
        case let .firmware(error): return error.description
        case let .refused(findings):
            return "refused before erasing anything: " + findings.map(\.message).joined(separator: "; ")
        case let .backupFailed(reason):
            return "could not save the backup, so nothing was erased: \(reason)"
        case let .verifyFailed(address, expected, actual):
            return String(cFormat: "verification failed at 0x%04X: wrote 0x%02X, read 0x%02X twice; the flash cell or the cable is bad", address, expected, actual)
        case let .eepromVerifyFailed(address, expected, actual):
            return String(cFormat: "the EEPROM did not take at 0x%04X: wrote 0x%02X, read 0x%02X", address, expected, actual)
        case let .targetVanished(step, detail):
            return "the target stopped answering while \(step.title) (\(detail)); check the ISP cable and the target's power"
        case let .fusesDidNotTake(mismatches):
            return "the fuses did not take: " + mismatches.map(\.description).joined(separator: "; ")
        case let .lockDidNotTake(expected, actual):
            return String(cFormat: "the lock bits did not take: wrote 0x%02X, read 0x%02X", expected, actual)
        case let .cancelled(text): return "stopped: \(text)"
        case let .stm32(error): return error.description
        case let .protectionNotAllowed(rule):
            return "the chip is read-protected (the guide's \"Unknown memory region\"): removing the protection mass-erases it, and its contents cannot be read or saved first; set allow_unlock = true in rule '\(rule)' to allow that"
        case let .bootloader(error):
            return error.description
        }
    }

    /// The process exit status the command line uses for this reason.
    public var exitCode: Int32 { failureClass.rawValue }

    /// What kind of failure this is, for a caller that acts on it (the command line's exit status).
    public var failureClass: FailureClass {
        switch self {
        case .programmer(.noTarget), .noTargetSignature, .targetVanished: return .noTarget
        case .programmer(.usb), .programmer(.serial), .programmer(.link), .programmer(.protocolViolation), .programmer(.stillBusy): return .programmerFailed
        case .programmer(.flashBeyondReach), .programmer(.firmwareLimitation): return .programmerCannot
        case .unknownSignature, .wrongPart: return .wrongChip
        case .noRule, .noSuchRule, .firmware, .refused: return .refused
        case .verifyFailed, .eepromVerifyFailed, .fusesDidNotTake, .lockDidNotTake: return .verificationFailed
        case .backupFailed: return .backupFailed
        case .cancelled: return .cancelled
        case .stm32(.link(.noTarget)), .stm32(.link(.noPower)): return .noTarget
        case .stm32(.link(.usb)), .stm32(.link(.protocolViolation)), .stm32(.link(.timeout)), .stm32(.link(.accessFault)): return .programmerFailed
        case .stm32(.link(.firmwareTooOld)): return .programmerCannot
        case .stm32(.unknownChip): return .wrongChip
        case .protectionNotAllowed: return .refused
        case .stm32(.controller): return .verificationFailed
        case .bootloader(.gone): return .noTarget
        case .bootloader(.serial), .bootloader(.usb), .bootloader(.protocolViolation): return .programmerFailed
        case .bootloader(.refused): return .programmerCannot
        }
    }
}

/// The classes of failure, each with the exit status the command line gives it: the one table `--help`
/// and the README's table are made from.
public enum FailureClass: Int32, CaseIterable, Sendable {
    case noTarget = 3
    case programmerFailed = 4
    case programmerCannot = 5
    case wrongChip = 6
    case refused = 7
    case verificationFailed = 8
    case backupFailed = 9
    case cancelled = 10

    /// What the status means, for people.
    public var meaning: String {
        switch self {
        case .noTarget: return "no target on the cable, or it vanished mid-restore (check the ISP or SWD cable and the target's power)"
        case .programmerFailed: return "the programmer failed: unplugged, timed out, or not found"
        case .programmerCannot: return "the programmer cannot do it (firmware too old, a flash it cannot address)"
        case .wrongChip: return "the chip is not the part the rule is for, or unknown"
        case .refused: return "the rules file or the plan was refused (unsafe fuses, misplaced bootloader, changed file, a programmer that cannot address the part, read protection without allow_unlock); nothing was erased"
        case .verificationFailed: return "verification of flash, EEPROM, fuses or lock failed"
        case .backupFailed: return "the backup could not be saved; nothing was erased"
        case .cancelled: return "stopped between two steps (the service was stopping, or SIGTERM/SIGINT)"
        }
    }

    /// The exit statuses as a Markdown table, with 0 first (the README's).
    public static var markdownTable: String {
        "| exit | meaning |\n|---|---|\n| 0 | restored, or already healthy (nothing written) |\n"
            + allCases.map { "| \($0.rawValue) | \($0.meaning) |\n" }.joined()
    }

    /// The exit statuses in one paragraph, for `--help`.
    public static var summary: String {
        "Exit status: 0 healthy or restored; " + allCases.map { "\($0.rawValue) \($0.meaning)" }.joined(separator: "; ") + "."
    }
}
