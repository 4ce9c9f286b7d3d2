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

    /// The rules the job chooses from: where the bootloader tells only the flash's size, the part is
    /// the one among those with that flash that a rule is for.
    private let rules: RuleSet
    private let ruleName: String?

    public init(session: BootloaderSession, rules: RuleSet, ruleName: String? = nil) {
        self.session = session
        self.rules = rules
        self.ruleName = ruleName
    }

    public var identity: ProgrammerIdentity { session.identity }
    public var clock: TimeSource { session.time }

    public func connect(_ context: StepContext) throws(RecoveryError) -> StepOutcome {
        let found = try bootloader { () throws(BootloaderError) in try session.identify() }
        report = found
        return StepOutcome(bytes: 0, "\(found.software) at \(session.identity.port ?? "?"), \(found.blockSize)-byte blocks")
    }

    public func identify(_ context: StepContext) throws(RecoveryError) -> (target: IdentifiedTarget, outcome: StepOutcome) {
        let found: AVRPart, signature: Signature, told: String
        if let reported = report?.signature {
            if reported.meansNoTarget { throw .noTargetSignature(reported) }
            guard let known = PartCatalog.avrParts(withSignature: reported).first else { throw .unknownSignature(reported) }
            (found, signature, told) = (known, reported, reported.description)
            applicationEnd = report?.fuses.flatMap { found.bootSection(in: $0) }.map { Int($0.start) }
                ?? report?.bootloaderBytes.map { found.flash.size - $0 } ?? found.flash.size
        } else if let geometry = report?.flashGeometry {
            found = try part(with: geometry)
            (signature, told) = (found.signature, "told by its \(geometry.size / 1024) KiB of flash in \(geometry.pageSize)-byte pages")
            // Where the bootloader sits is not told: the application stays below the largest boot section.
            applicationEnd = found.flash.size - (found.bootSections.last?.size ?? 0)
        } else {
            throw .bootloader(.protocolViolation("the bootloader reported neither a signature nor its flash"))
        }
        part = found
        return (.avr(found, signature), StepOutcome(bytes: 3, "\(found.name) (\(told)), application section 0x0000–" + String(cFormat: "0x%04X", UInt32(applicationEnd - 1))))
    }

    /// The part whose flash has `geometry` that the named rule, or else a rule, is for; the only such
    /// part when no rule is.
    private func part(with geometry: MemoryGeometry) throws(RecoveryError) -> AVRPart {
        let candidates = PartCatalog.avrParts.filter { $0.flash == geometry && !$0.bootSections.isEmpty }
        let named = ruleName.flatMap(rules.rule(named:))
        for candidate in candidates {
            let identified = IdentifiedTarget.avr(candidate, candidate.signature)
            let rule = named.flatMap { identified.mismatch(with: $0, programmer: identity) == nil ? $0 : nil }
                ?? (named == nil ? rules.firstMatch(for: identified.context(programmer: identity)) : nil)
            guard let rule else { continue }
            // A rule for the ATmega32A matches the ATmega32 too (one signature): the name it gives wins.
            return candidates.first { rule.parts.contains(.avr($0)) } ?? candidate
        }
        if candidates.count == 1 { return candidates[0] }
        let sizes = "\(geometry.size / 1024) KiB of flash in \(geometry.pageSize)-byte pages"
        guard !candidates.isEmpty else { throw .bootloader(.protocolViolation("no AVR part has \(sizes)")) }
        throw .noRule(part: "a part with \(sizes) (" + candidates.map(\.id).joined(separator: ", ") + "; the rule's part says which)", programmer: identity.name)
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

    /// The bootloader's erase; where it has none (it erases each page as it writes it), the pages the
    /// application does not cover are written blank, and the write erases the rest.
    public func erase(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> StepOutcome {
        let section = String(cFormat: "the application section, 0x0000–0x%04X", UInt32(applicationEnd - 1))
        guard session.erasesAsItWrites else {
            try bootloader { () throws(BootloaderError) in try session.eraseApplication() }
            return StepOutcome(bytes: applicationEnd, section)
        }
        let unit = try writeUnit()
        var blank: [Range<Int>] = [], start = 0
        for run in try writeRuns(of: application(of: plan)) + [applicationEnd..<applicationEnd] {
            if run.lowerBound > start { blank.append(start..<run.lowerBound) }
            start = max(start, run.upperBound)
        }
        var done = 0
        let total = blank.reduce(0) { $0 + $1.count }
        for run in blank {
            try bootloader { () throws(BootloaderError) in
                try session.writeFlash(at: run.lowerBound, [UInt8](repeating: 0xFF, count: run.count)) { context.progress(done: done + $0, total: total) }
            }
            done += run.count
        }
        return StepOutcome(bytes: total, "\(section): \(total / unit) pages the application does not cover written blank, the rest as it is written")
    }

    public func write(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> StepOutcome {
        let image = try application(of: plan)
        let runs = try writeRuns(of: image)
        let total = runs.reduce(0) { $0 + $1.count }
        var written = 0
        for run in runs {
            try bootloader { () throws(BootloaderError) in
                try session.writeFlash(at: run.lowerBound, image.bytes(in: UInt32(run.lowerBound)..<UInt32(run.upperBound))) { done in
                    context.progress(done: written + done, total: total)
                }
            }
            written += run.count
        }
        return StepOutcome(bytes: image.byteCount, "\(image.byteCount) bytes through \(identity.linkDescription)")
    }

    /// What one write covers: the bootloader's block, or the flash page where each write erases its page.
    private func writeUnit() throws(RecoveryError) -> Int {
        let block = report?.blockSize ?? 128
        return session.erasesAsItWrites ? max(block, try identified().flash.pageSize) : block
    }

    /// The image's extent in whole write units, runs that touch merged (two segments in one block are
    /// one write: written apart, the second would blank the first's bytes where pages are erased).
    private func writeRuns(of image: MemoryImage) throws(RecoveryError) -> [Range<Int>] {
        let unit = try writeUnit()
        var runs: [Range<Int>] = []
        for segment in image.segments {
            let start = Int(segment.address) / unit * unit
            let end = (Int(segment.address) + segment.bytes.count + unit - 1) / unit * unit
            if let last = runs.last, start <= last.upperBound { runs[runs.count - 1] = last.lowerBound..<max(last.upperBound, end) } else { runs.append(start..<end) }
        }
        return runs
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
        self.init(target: BootloaderTarget(session: session, rules: rules, ruleName: ruleName), rules: rules, ruleName: ruleName, backups: backups, sink: sink)
    }
}
