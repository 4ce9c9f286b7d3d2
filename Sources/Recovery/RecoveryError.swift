import AVRISP
import Parts
import Rules
import STLink

/// Why a restore stopped, and at which step; `backup` says where the chip's old contents are.
public struct RecoveryFailure: Error, Sendable, CustomStringConvertible {
    public let step: RecoveryStep
    public let reason: RecoveryError
    public let backupPath: String?

    public var description: String {
        var text = reason.description
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
    /// The target stopped answering during the write.
    case targetVanished(step: RecoveryStep, detail: String)
    case fusesDidNotTake([FuseMismatch])
    case lockDidNotTake(expected: UInt8, actual: UInt8)
    case cancelled(String)
    case stm32(STM32Error)
    /// The STM32 is read-protected and the rule does not allow removing the protection.
    case protectionNotAllowed(rule: String)

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
            return "the chip's signature \(signature) is \(found), but rule '\(rule)' is for \(expected); nothing was written"
        case let .firmware(error): return error.description
        case let .refused(findings):
            return "refused before erasing anything: " + findings.map(\.message).joined(separator: "; ")
        case let .backupFailed(reason):
            return "could not save the backup, so nothing was erased: \(reason)"
        case let .verifyFailed(address, expected, actual):
            return String(format: "verification failed at 0x%04X: wrote 0x%02X, read 0x%02X twice; the flash cell or the cable is bad", address, expected, actual)
        case let .targetVanished(step, detail):
            return "the target stopped answering while \(step.title) (\(detail)); check the ISP cable and the target's power"
        case let .fusesDidNotTake(mismatches):
            return "the fuses did not take: " + mismatches.map(\.description).joined(separator: "; ")
        case let .lockDidNotTake(expected, actual):
            return String(format: "the lock bits did not take: wrote 0x%02X, read 0x%02X", expected, actual)
        case let .cancelled(text): return "stopped: \(text)"
        case let .stm32(error): return error.description
        case let .protectionNotAllowed(rule):
            return "the chip is read-protected (the guide's \"Unknown memory region\"): removing the protection mass-erases it, and its contents cannot be read or saved first; set allow_unlock = true in rule '\(rule)' to allow that"
        }
    }

    /// The process exit code the command line uses for this reason (see the README).
    public var exitCode: Int32 {
        switch self {
        case .programmer(.noTarget), .noTargetSignature, .targetVanished: return 3
        case .programmer(.usb), .programmer(.link), .programmer(.protocolViolation), .programmer(.stillBusy): return 4
        case .programmer(.flashBeyondReach), .programmer(.firmwareLimitation): return 5
        case .unknownSignature, .wrongPart: return 6
        case .noRule, .noSuchRule, .firmware, .refused: return 7
        case .verifyFailed, .fusesDidNotTake, .lockDidNotTake: return 8
        case .backupFailed: return 9
        case .cancelled: return 10
        case .stm32(.link(.noTarget)), .stm32(.link(.noPower)): return 3
        case .stm32(.link(.usb)), .stm32(.link(.protocolViolation)), .stm32(.link(.timeout)), .stm32(.link(.accessFault)), .stm32(.link(.notFound)): return 4
        case .stm32(.link(.firmwareTooOld)): return 5
        case .stm32(.unknownChip): return 6
        case .protectionNotAllowed: return 7
        case .stm32(.controller): return 8
        }
    }
}
