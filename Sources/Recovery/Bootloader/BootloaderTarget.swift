import Bootloaders
import BenchModel
import FirmwareImage
import FoundationEssentials
import Parts
import Rules
import STLink
import Transport

/// A board in its own bootloader, as the restore skeleton drives it to flash the rule's application:
/// identify (what the bootloader reports: an AVR's signature and fuses, or the flash it describes) →
/// check (the rule's part, and an application that stays inside the application section) → health
/// check → backup (the application section, read back) → erase the application section → write →
/// verify → start the application and confirm the bootloader's device went away. The bootloader's own
/// region is never written.
public final class BootloaderTarget: RestoreTarget {
    public let session: BootloaderSession
    private var report: BootloaderReport?
    /// The AVR, where it is one (its EEPROM, the backup's name).
    private var part: AVRPart?
    /// The STM32, where it is one.
    private var stm32: STM32Target?
    /// Where applications go: below the bootloader's section on an AVR, above its pages (or all of flash)
    /// on an STM32.
    private var section = 0..<0
    /// The section as the backup read it: what is blank already need not be erased again.
    private var readBack: [UInt8]?
    /// Erase units read blank or not since, where the backup did not read them (by start address).
    private var blankness: [Int: Bool] = [:]

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
        if let flash = report?.stm32Flash {
            let target = try stm32Target(with: flash)
            stm32 = target
            section = Int(flash.applicationStart)..<Int(flash.end)
            let maker = target.variant.isGenuine || target.variant.maker == "unknown" ? "" : ", \(target.variant.maker)'s"
            return (.stm32(target), StepOutcome(bytes: 0, "\(target.partName) (told by its \(flash.size / 1024) KiB of flash in \(flash.geometry.description)\(maker)), application section \(describe(section))"))
        }
        let found: AVRPart, signature: Signature, told: String
        let applicationEnd: Int
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
        section = 0..<applicationEnd
        return (.avr(found, signature), StepOutcome(bytes: 3, "\(found.name) (\(told)), application section \(describe(section))"))
    }

    /// The first candidate the named rule, or else a rule, is for (its own name winning among candidates
    /// it covers alike); the only candidate when no rule is; else no rule, the candidates named.
    private func choose<T>(_ candidates: [T], as identified: (T) -> IdentifiedTarget, named: (Rule, T) -> Bool, what: String) throws(RecoveryError) -> T {
        let namedRule = ruleName.flatMap(rules.rule(named:))
        for candidate in candidates {
            let target = identified(candidate)
            let rule = namedRule.flatMap { target.mismatch(with: $0, programmer: identity) == nil ? $0 : nil }
                ?? (namedRule == nil ? rules.firstMatch(for: target.context(programmer: identity)) : nil)
            guard let rule else { continue }
            return candidates.first { named(rule, $0) } ?? candidate
        }
        if candidates.count == 1 { return candidates[0] }
        guard !candidates.isEmpty else { throw .bootloader(.protocolViolation("no part bootmedic knows has \(what)")) }
        throw .noRule(part: "a part with \(what) (" + candidates.map { identified($0).name }.joined(separator: ", ") + "; the rule's part says which)", programmer: identity.name)
    }

    /// The AVR whose flash has `geometry`.
    private func part(with geometry: MemoryGeometry) throws(RecoveryError) -> AVRPart {
        try choose(PartCatalog.avrParts.filter { $0.flash == geometry && !$0.bootSections.isEmpty }, as: { .avr($0, $0.signature) },
                   // A rule for the ATmega32A matches the ATmega32 too (one signature): the name it gives wins.
                   named: { rule, part in rule.parts.contains(.avr(part)) },
                   what: "\(geometry.size / 1024) KiB of flash in \(geometry.pageSize)-byte pages")
    }

    /// The STM32 line (and maker) whose flash is the one described: the bootloader reads no chip id, so
    /// every line of the family that erases the same way and is that large is a candidate, ST's own
    /// first, or only the maker the bootloader's ids name.
    private func stm32Target(with flash: STM32BootloaderFlash) throws(RecoveryError) -> STM32Target {
        var candidates: [STM32Target] = []
        for family in STM32Family.all where flash.family.map({ $0 == family.id }) ?? true {
            let variants = STM32Variant.all.filter { $0.family == family.id }
                .sorted { ($0.isGenuine ? 0 : $0.maker == "unknown" ? 2 : 1) < ($1.isGenuine ? 0 : $1.maker == "unknown" ? 2 : 1) }
            for chip in family.chips where chip.maximumFlash >= flash.size && Self.erasesAlike(chip.geometry, flash.geometry) {
                for variant in variants where flash.variant.map({ $0 == variant.id }) ?? true {
                    candidates.append(STM32Target(identity: STM32Identity(debugPortIDCode: 0, cpuID: 0, designer: nil, chipID: chip.chipID), revision: 0,
                                                  chip: chip, flashSize: flash.size, variant: variant))
                }
            }
        }
        return try choose(candidates, as: { .stm32($0) }, named: { rule, target in rule.parts.contains { $0.id == target.variant.id } },
                          what: "\(flash.size / 1024) KiB of flash in \(flash.geometry.description)")
    }

    /// Whether a line's erase units are the described ones (a smaller chip has a prefix of its sectors).
    private static func erasesAlike(_ line: FlashGeometry, _ described: FlashGeometry) -> Bool {
        if let page = described.pageSize { return line.pageSize == page }
        return Array(line.sectorSizes.prefix(described.sectorSizes.count)) == described.sectorSizes
    }

    /// "0x0000–0x6FFF", "0x08002000–0x0800FFFF".
    private func describe(_ range: Range<Int>) -> String {
        let format = stm32 == nil ? "0x%04X–0x%04X" : "0x%08X–0x%08X"
        return String(cFormat: format, UInt32(range.lowerBound), UInt32(range.upperBound - 1))
    }

    /// The rule's application must exist, be for this part, and stay inside the application section.
    public func check(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> (findings: [Finding], outcome: StepOutcome) {
        guard plan.firmware.application != nil else {
            return ([Finding(.error, .imageBeyondFlash, "rule '\(plan.rule.name)' has no application to flash through the bootloader")], StepOutcome(bytes: 0, "no application"))
        }
        let application = try self.application(of: plan)
        var findings: [Finding] = []
        if let span = application.span {
            if span.lowerBound < UInt64(section.lowerBound) {
                findings.append(Finding(.error, .imageBeyondFlash, String(cFormat: "the application starts at 0x%08llX, in the bootloader's own pages below 0x%08X: the bootloader would be damaged or refuse it", span.lowerBound, UInt32(section.lowerBound))))
            }
            if span.upperBound > UInt64(section.upperBound) {
                let reason = part != nil ? "into the bootloader's section at " + String(cFormat: "0x%04X", UInt32(section.upperBound)) + ": the bootloader would be damaged or refuse it"
                    : "beyond the end of flash at " + String(cFormat: "0x%08X", UInt32(section.upperBound))
                findings.append(Finding(.error, .imageBeyondFlash, String(cFormat: "the application reaches 0x%04llX, ", span.upperBound - 1) + reason))
            }
        }
        if let part, let misfit = plan.firmware.eeprom?.misfit(size: part.eeprom.size, part: part.name) {
            findings.append(Finding(.error, .imageBeyondFlash, misfit))
        }
        if stm32 != nil, plan.firmware.eeprom != nil {
            findings.append(Finding(.error, .imageBeyondFlash, "rule '\(plan.rule.name)' has an eeprom key: an STM32 has no EEPROM"))
        }
        if let refusal = session.readRefusal, stm32 != nil {
            // An STM32 bootloader that cannot read cannot erase or write either (read protection).
            findings.append(Finding(.error, .imageBeyondFlash, "\(refusal); remove it over SWD (bootmedic restore with an ST-Link) first"))
        }
        let name = part?.name ?? stm32?.partName ?? "the chip"
        return (findings, StepOutcome(bytes: application.byteCount, "\(application.byteCount) bytes of application for \(name)"))
    }

    public func isReadProtected() throws(RecoveryError) -> Bool { false }

    public func healthCheck(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> HealthVerdict {
        guard plan.firmware.application != nil else { return .needsRestore(bytesRead: 0, reason: "no application") }
        let image = try application(of: plan)
        guard image.span != nil else { return .needsRestore(bytesRead: 0, reason: "no application") }
        if let refusal = session.readRefusal { return .needsRestore(bytesRead: 0, reason: refusal) }
        var read = 0
        for run in try writeRuns(of: image) {
            let current = try readFlash(run)
            read += current.count
            guard current == image.bytes(in: UInt32(run.lowerBound)..<UInt32(run.upperBound)) else {
                return .needsRestore(bytesRead: read, reason: "the flash differs from the application")
            }
        }
        guard let eeprom = plan.firmware.eeprom, let part else { return .healthy(bytesRead: read, detail: "the application is already there") }
        for segment in eeprom.segments(size: part.eeprom.size) {
            let there = try bootloader { () throws(BootloaderError) in try session.readEEPROM(at: segment.address, count: segment.bytes.count) }
            read += there.count
            if there != segment.bytes { return .needsRestore(bytesRead: read, reason: "the application is there, the EEPROM differs from the rule's") }
        }
        return .healthy(bytesRead: read, detail: "the application and the rule's EEPROM are already there")
    }

    /// The application section as it was (the bootloader's own is left out: it is not changed).
    public func backup(_ plan: RestorePlan, to store: BackupStore, _ context: StepContext) throws(RecoveryError) -> (path: String, bytes: Int) {
        if let refusal = session.readRefusal { throw .backupFailed("\(refusal); set backup = false in rule '\(plan.rule.name)' to flash without one") }
        let flash = try readFlash(section) { done in context.progress(done: done, total: self.section.count) }
        readBack = flash
        // The EEPROM too, when the rule rewrites it.
        let eeprom = plan.firmware.eeprom == nil || (part?.eeprom.size ?? 0) == 0 ? nil
            : try bootloader { () throws(BootloaderError) in try session.readEEPROM(at: 0, count: part?.eeprom.size ?? 0) }
        var manifest = ["programmer": identity.linkName, "rule": plan.rule.name,
                        "contents": "the application section, \(describe(section))" + (eeprom == nil ? "" : ", and the EEPROM")]
        if let part { (manifest["part"], manifest["signature"]) = (part.name, part.signature.description) }
        if let stm32 { manifest["part"] = stm32.partName }
        do {
            let path = try store.saveFolder(named: part?.id ?? stm32?.variant.id ?? "chip", date: Date(), manifest: manifest) { folder in
                try writeDurably(Data(flash), to: folder + "/flash.bin")
                if let eeprom { try writeDurably(Data(eeprom), to: folder + "/eeprom.bin") }
            }
            return (path, flash.count + (eeprom?.count ?? 0))
        } catch {
            throw .backupFailed("\(store.directory): \(InputFile.reason(error))")
        }
    }

    public func unlock(_ context: StepContext) throws(RecoveryError) -> StepOutcome { StepOutcome(bytes: 0, "nothing to unlock") }

    /// The bootloader's erase, sparing what the backup read blank; where it has none (it erases each
    /// page as it writes it), nothing here: the write covers the pages the application does not.
    public func erase(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> StepOutcome {
        guard !session.erasesAsItWrites else {
            let blank = try blankRuns(of: application(of: plan)).reduce(0) { $0 + $1.count }
            return StepOutcome(bytes: 0, "the application section, \(describe(section)): each page is erased as it is written (\(blank / (try writeUnit())) pages the application does not cover are written blank)")
        }
        var spared = 0
        try bootloader { () throws(BootloaderError) in
            // A unit that cannot be read blank is erased.
            try session.eraseApplication { range in
                let blank = (try? isBlank(range)) ?? false
                if blank { spared += range.count }
                return blank
            }
        }
        return StepOutcome(bytes: section.count - spared, "the application section, \(describe(section))" + (spared == 0 ? "" : " (\(spared / 1024) KiB already blank left alone)"))
    }

    /// Whether `range` of the section is blank: as the backup read it, else read now where the
    /// bootloader reads (a read costs far less than an erase or a page written), remembered.
    private func isBlank(_ range: Range<Int>) throws(RecoveryError) -> Bool {
        guard range.lowerBound >= section.lowerBound, range.upperBound <= section.upperBound else { return false }
        if let readBack { return readBack[(range.lowerBound - section.lowerBound)..<(range.upperBound - section.lowerBound)].allSatisfy { $0 == 0xFF } }
        guard session.readRefusal == nil else { return false }
        if let known = blankness[range.lowerBound] { return known }
        let blank = try readFlash(range).allSatisfy { $0 == 0xFF }
        blankness[range.lowerBound] = blank
        return blank
    }

    public func write(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> StepOutcome {
        let image = try application(of: plan)
        let runs = try (writeRuns(of: image) + (session.erasesAsItWrites ? blankRuns(of: image) : [])).sorted { $0.lowerBound < $1.lowerBound }
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

    /// What one write covers: the bootloader's block, or the erase unit where each write erases its own.
    private func writeUnit() throws(RecoveryError) -> Int {
        let block = report?.blockSize ?? 128
        guard session.erasesAsItWrites else { return block }
        if let part { return max(block, part.flash.pageSize) }
        return max(block, report?.stm32Flash?.geometry.pageSize ?? block)
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

    /// Where a bootloader that erases as it writes must be sent blank pages: the section outside the
    /// application's runs, less the units already blank.
    private func blankRuns(of image: MemoryImage) throws(RecoveryError) -> [Range<Int>] {
        let unit = try writeUnit()
        var gaps: [Range<Int>] = [], start = section.lowerBound
        for run in try writeRuns(of: image) + [section.upperBound..<section.upperBound] {
            if run.lowerBound > start { gaps.append(start..<run.lowerBound) }
            start = max(start, run.upperBound)
        }
        var out: [Range<Int>] = []
        for gap in gaps {
            for unitStart in stride(from: gap.lowerBound, to: gap.upperBound, by: unit) {
                let range = unitStart..<min(unitStart + unit, gap.upperBound)
                if try isBlank(range) { continue }
                if let last = out.last, last.upperBound == range.lowerBound { out[out.count - 1] = last.lowerBound..<range.upperBound } else { out.append(range) }
            }
        }
        return out
    }

    public func verify(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> StepOutcome {
        let image = try application(of: plan)
        if let refusal = session.readRefusal { return StepOutcome(bytes: 0, "not verified: \(refusal)") }
        for run in try writeRuns(of: image) {
            let back = try readFlash(run)
            let wanted = image.bytes(in: UInt32(run.lowerBound)..<UInt32(run.upperBound))
            if let i = wanted.indices.first(where: { wanted[$0] != back[$0] }) {
                throw .verifyFailed(address: UInt32(run.lowerBound + i), expected: wanted[i], actual: back[i])
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
        result.signature = part == nil ? nil : report?.signature ?? part?.signature
        result.stm32 = stm32
    }

    // MARK: Helpers

    /// The rule's application; a raw binary for an STM32 without an `application_address` goes where
    /// the bootloader puts applications (0x08002000 above the STM32duino bootloader), as dfu-util's
    /// `-D FILE.bin` does.
    private func application(of plan: RestorePlan) throws(RecoveryError) -> MemoryImage {
        guard let file = plan.firmware.application else { throw .refused([Finding(.error, .imageBeyondFlash, "the rule has no application")]) }
        guard let flash = report?.stm32Flash, file.format == .binary, plan.rule.applicationAddress == nil,
              let low = file.image.lowestAddress, low == 0 || low == flash.base, low != flash.applicationStart else {
            return file.image
        }
        var moved = MemoryImage()
        for segment in file.image.segments {
            do { try moved.write(segment.bytes, at: segment.address - low + flash.applicationStart) } catch {
                throw .refused([Finding(.error, .imageBeyondFlash, "the application does not fit above the bootloader: \(error)")])
            }
        }
        return moved
    }

    private func readFlash(_ range: Range<Int>, progress: @escaping (Int) -> Void = { _ in }) throws(RecoveryError) -> [UInt8] {
        try bootloader { () throws(BootloaderError) in try session.readFlash(at: range.lowerBound, count: range.count, progress: progress) }
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
