import AVRISP
import Parts

/// What `probe` finds on a programmer's cable, without changing anything.
public struct ProbeReport: Sendable {
    public var programmer: ProgrammerIdentity
    public var signature: Signature?
    public var part: AVRPart?
    public var fuses: FuseSet?
    public var lock: UInt8?
    /// Why the probe stopped early, if it did.
    public var problem: RecoveryError?
}

/// Reads identity, signature, fuses and lock, then releases the target.
public enum TargetProbe {
    public static func run(_ programmer: ISPProgrammer) -> ProbeReport {
        var report = ProbeReport(programmer: programmer.identity)
        do {
            try programmer.enterProgrammingMode()
        } catch {
            report.programmer = programmer.identity
            report.problem = .programmer(error)
            return report
        }
        defer { programmer.leaveProgrammingMode() }
        report.programmer = programmer.identity
        do {
            let signature = try programmer.readSignature()
            report.signature = signature
            if signature.meansNoTarget { report.problem = .noTargetSignature(signature); return report }
            if let part = PartCatalog.avrParts(withSignature: signature).first {
                report.part = part
                report.fuses = try programmer.readFuses(of: part)
            } else {
                report.problem = .unknownSignature(signature)
                report.fuses = try programmer.readAllFuses()
            }
            report.lock = try programmer.readLock()
        } catch {
            report.problem = .programmer(error)
        }
        return report
    }
}
