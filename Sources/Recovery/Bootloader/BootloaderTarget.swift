import Bootloaders
import BenchModel
import FirmwareImage
import FoundationEssentials
import Parts
import Rules
import Transport

/// A board in its own bootloader, as the restore skeleton drives it to flash the rule's application:
/// identify (the signature and fuses the bootloader reports) → check (the rule's part, and an
/// application that stays below the bootloader's own section) → health check → backup (the application
/// section, read back) → erase the application section → write → verify → start the application and
/// confirm the bootloader's device went away. The bootloader's own region is never written.
public final class BootloaderTarget: RestoreTarget {
    public let session: BootloaderSession
    private var report: BootloaderReport?
    private var part: AVRPart?
    /// Where the bootloader's own section begins: the application must end below it.
    private var applicationEnd = 0

    public init(session: BootloaderSession) { self.session = session }

    public var identity: ProgrammerIdentity { session.identity }
    public var clock: TimeSource { session.time }

    public func connect(_ context: StepContext) throws(RecoveryError) -> StepOutcome {
        let found = try bootloader { () throws(BootloaderError) in try session.identify() }
        report = found
        return StepOutcome(bytes: 0, "\(found.software) at \(session.identity.port ?? "?"), \(found.blockSize)-byte blocks")
    }

    public func identify(_ context: StepContext) throws(RecoveryError) -> (target: IdentifiedTarget, outcome: StepOutcome) {
        guard let signature = report?.signature else { throw .bootloader(.protocolViolation("the bootloader reported no signature")) }
        if signature.meansNoTarget { throw .noTargetSignature(signature) }
        guard let found = PartCatalog.avrParts(withSignature: signature).first else { throw .unknownSignature(signature) }
        part = found
        applicationEnd = report?.fuses.flatMap { found.bootSection(in: $0) }.map { Int($0.start) }
            ?? report?.bootloaderBytes.map { found.flash.size - $0 } ?? found.flash.size
        return (.avr(found, signature), StepOutcome(bytes: 3, "\(found.name) (\(signature)), application section 0x0000–" + String(cFormat: "0x%04X", UInt32(applicationEnd - 1))))
    }

    /// The rule's application must exist, be for this part, and stay out of the bootloader's section.
    public func check(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> (findings: [Finding], outcome: StepOutcome) {
        let part = try identified()
        guard let application = plan.firmware.application?.image else {
            return ([Finding(.error, .imageBeyondFlash, "rule '\(plan.rule.name)' has no application to flash through the bootloader")], StepOutcome(bytes: 0, "no application"))
        }
        var findings: [Finding] = []
        if let span = application.span, span.upperBound > UInt64(applicationEnd) {
            findings.append(Finding(.error, .imageBeyondFlash, String(cFormat: "the application reaches 0x%04llX, into the bootloader's section at 0x%04X: the bootloader would be damaged or refuse it", span.upperBound - 1, UInt32(applicationEnd))))
        }
        if let misfit = plan.firmware.eeprom?.misfit(size: part.eeprom.size, part: part.name) {
            findings.append(Finding(.error, .imageBeyondFlash, misfit))
        }
        return (findings, StepOutcome(bytes: application.byteCount, "\(application.byteCount) bytes of application for \(part.name)"))
    }

    public func isReadProtected() throws(RecoveryError) -> Bool { false }

    public func healthCheck(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> HealthVerdict {
        guard let image = plan.firmware.application?.image, let span = image.span else { return .needsRestore(bytesRead: 0, reason: "no application") }
        if let refusal = session.readRefusal { return .needsRestore(bytesRead: 0, reason: refusal) }
        let current = try readFlash(UInt32(span.lowerBound)..<UInt32(span.upperBound))
        let wanted = image.bytes(in: UInt32(span.lowerBound)..<UInt32(span.upperBound))
        guard current == wanted else { return .needsRestore(bytesRead: current.count, reason: "the flash differs from the application") }
        guard let eeprom = plan.firmware.eeprom else { return .healthy(bytesRead: current.count, detail: "the application is already there") }
        var read = current.count
        for segment in eeprom.segments(size: try identified().eeprom.size) {
            let there = try bootloader { () throws(BootloaderError) in try session.readEEPROM(at: segment.address, count: segment.bytes.count) }
            read += there.count
            if there != segment.bytes { return .needsRestore(bytesRead: read, reason: "the application is there, the EEPROM differs from the rule's") }
        }
        return .healthy(bytesRead: read, detail: "the application and the rule's EEPROM are already there")
    }

    /// The application section as it was (the bootloader's own is left out: it is not changed).
    public func backup(_ plan: RestorePlan, to store: BackupStore, _ context: StepContext) throws(RecoveryError) -> (path: String, bytes: Int) {
        let part = try identified()
        if let refusal = session.readRefusal { throw .backupFailed("\(refusal); set backup = false in rule '\(plan.rule.name)' to flash without one") }
        let flash = try readFlash(0..<UInt32(applicationEnd)) { done in context.progress(done: done, total: self.applicationEnd) }
        // The EEPROM too, when the rule rewrites it.
        let eeprom = plan.firmware.eeprom == nil || part.eeprom.size == 0 ? nil
            : try bootloader { () throws(BootloaderError) in try session.readEEPROM(at: 0, count: part.eeprom.size) }
        do {
            let path = try store.saveFolder(named: part.id, date: Date(), manifest: [
                "part": part.name, "signature": part.signature.description, "programmer": identity.linkName, "rule": plan.rule.name,
                "contents": String(cFormat: "the application section, 0x0000–0x%04X", UInt32(applicationEnd - 1)) + (plan.firmware.eeprom == nil ? "" : ", and the EEPROM"),
            ]) { folder in
                try writeDurably(Data(flash), to: folder + "/flash.bin")
                if let eeprom { try writeDurably(Data(eeprom), to: folder + "/eeprom.bin") }
            }
            return (path, flash.count + (eeprom?.count ?? 0))
        } catch {
            throw .backupFailed("\(store.directory): \(InputFile.reason(error))")
        }
    }

    public func unlock(_ context: StepContext) throws(RecoveryError) -> StepOutcome { StepOutcome(bytes: 0, "nothing to unlock") }

    public func erase(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> StepOutcome {
        try bootloader { () throws(BootloaderError) in try session.eraseApplication() }
        return StepOutcome(bytes: applicationEnd, String(cFormat: "the application section, 0x0000–0x%04X", UInt32(applicationEnd - 1)))
    }

    public func write(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> StepOutcome {
        let image = try application(of: plan)
        var written = 0
        for segment in image.segments {
            let block = report?.blockSize ?? 128
            let start = Int(segment.address) / block * block
            let leading = [UInt8](repeating: 0xFF, count: Int(segment.address) - start)
            try bootloader { () throws(BootloaderError) in
                try session.writeFlash(at: start, leading + segment.bytes) { done in
                    context.progress(done: written + max(0, done - leading.count), total: image.byteCount)
                }
            }
            written += segment.bytes.count
        }
        return StepOutcome(bytes: written, "\(written) bytes through \(identity.linkDescription)")
    }

    public func verify(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> StepOutcome {
        let image = try application(of: plan)
        if let refusal = session.readRefusal { return StepOutcome(bytes: 0, "not verified: \(refusal)") }
        for segment in image.segments {
            let back = try readFlash(segment.address..<segment.address + UInt32(segment.bytes.count))
            if let i = segment.bytes.indices.first(where: { segment.bytes[$0] != back[$0] }) {
                throw .verifyFailed(address: segment.address + UInt32(i), expected: segment.bytes[i], actual: back[i])
            }
        }
        return StepOutcome(bytes: image.byteCount, "\(image.byteCount) bytes match")
    }

    /// The rule's EEPROM (a file, or erased), written and read back where the bootloader reads.
    public func finishingSteps(_ plan: RestorePlan, backup: String?) -> [FinishingStep] {
        guard let eeprom = plan.firmware.eeprom, let part else { return [] }
        return [FinishingStep(.writeEEPROM) { [self] (_) throws(RecoveryError) in
            var written = 0
            for segment in eeprom.segments(size: part.eeprom.size) {
                // Each EEPROM byte costs milliseconds: where the bootloader reads, only the runs that differ are written.
                let current = session.readRefusal == nil
                    ? try bootloader { () throws(BootloaderError) in try session.readEEPROM(at: segment.address, count: segment.bytes.count) } : nil
                for run in Self.differingRuns(segment.bytes, from: current) {
                    try bootloader { () throws(BootloaderError) in try session.writeEEPROM(at: segment.address + run.lowerBound, Array(segment.bytes[run])) }
                    written += run.count
                }
                if session.readRefusal == nil {
                    let back = try bootloader { () throws(BootloaderError) in try session.readEEPROM(at: segment.address, count: segment.bytes.count) }
                    if let i = segment.bytes.indices.first(where: { segment.bytes[$0] != back[$0] }) {
                        throw .eepromVerifyFailed(address: UInt32(segment.address + i), expected: segment.bytes[i], actual: back[i])
                    }
                }
            }
            let what = eeprom.segments(size: part.eeprom.size).reduce(0) { $0 + $1.bytes.count }
            if case .erase = eeprom { return StepOutcome(bytes: written, "erased (\(written) of \(what) bytes were not 0xFF), read back") }
            return StepOutcome(bytes: written, "\(what) bytes in place (\(written) written), read back")
        }]
    }

    /// The index ranges where `wanted` differs from `current` (all of it when nothing was read), runs
    /// closer than 16 bytes joined: one command costs more than a few bytes rewritten.
    static func differingRuns(_ wanted: [UInt8], from current: [UInt8]?) -> [Range<Int>] {
        guard let current, current.count == wanted.count else { return wanted.isEmpty ? [] : [0..<wanted.count] }
        var runs: [Range<Int>] = []
        for i in wanted.indices where wanted[i] != current[i] {
            if let last = runs.last, i - last.upperBound < 16 { runs[runs.count - 1] = last.lowerBound..<i + 1 } else { runs.append(i..<i + 1) }
        }
        return runs
    }

    /// Starts the application and confirms the bootloader's device went away (within 3 s).
    public func release(_ context: StepContext) throws(RecoveryError) -> StepOutcome {
        try bootloader { () throws(BootloaderError) in try session.startApplication() }
        let gone = session.hasGone(withinMilliseconds: 3000)
        if !gone { context.notice(.warning, "the bootloader's device is still there 3 s after it was told to start the application") }
        session.close()
        return StepOutcome(bytes: 0, gone ? "the application runs: the bootloader's device went away" : "asked the bootloader to start the application")
    }

    public func abandon() { session.close() }

    public func describe(into result: inout RecoveryResult) {
        result.part = part
        result.signature = report?.signature
    }

    // MARK: Helpers

    private func identified() throws(RecoveryError) -> AVRPart {
        guard let part else { throw .bootloader(.protocolViolation("the chip was not identified")) }
        return part
    }

    private func application(of plan: RestorePlan) throws(RecoveryError) -> MemoryImage {
        guard let image = plan.firmware.application?.image else { throw .refused([Finding(.error, .imageBeyondFlash, "the rule has no application")]) }
        return image
    }

    private func readFlash(_ range: Range<UInt32>, progress: @escaping (Int) -> Void = { _ in }) throws(RecoveryError) -> [UInt8] {
        try bootloader { () throws(BootloaderError) in try session.readFlash(at: Int(range.lowerBound), count: range.count, progress: progress) }
    }

    private func bootloader<T>(_ body: () throws(BootloaderError) -> T) throws(RecoveryError) -> T {
        do { return try body() } catch { throw .bootloader(error) }
    }
}

extension RecoveryJob {
    /// A flash of the rule's application through the board's own bootloader.
    public convenience init(bootloader session: BootloaderSession, rules: RuleSet, ruleName: String? = nil, backups: BackupStore?, sink: RecoveryEventSink) {
        self.init(target: BootloaderTarget(session: session), rules: rules, ruleName: ruleName, backups: backups, sink: sink)
    }
}
