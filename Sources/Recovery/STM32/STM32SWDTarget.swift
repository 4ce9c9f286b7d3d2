import BenchModel
import FirmwareImage
import FoundationEssentials
import Parts
import Rules
import STLink
import Transport

/// An STM32 behind an ST-Link, over SWD: connect (version, supply, SWD, IDCODE) → identify (chip id,
/// flash size) → check → read protection (removed only when the rule allows it, which mass-erases the
/// chip) → health check → backup → erase the pages the image covers → program → verify → reset and run.
public final class STM32SWDTarget: RestoreTarget {
    public let link: STLink
    private var debugPortIDCode: UInt32 = 0
    private var targetVoltage: Double?
    private var target: STM32Target?
    /// Read protection as the check found it (the backup before an unlock needs to know).
    private var readProtected = false
    /// The identified family's flash controller.
    private var controller: STM32FlashController?

    public init(link: STLink) { self.link = link }

    public var identity: ProgrammerIdentity {
        var identity = link.identity
        identity.targetVoltage = targetVoltage
        return identity
    }

    public var clock: TimeSource { link.time }

    public func connect(_ context: StepContext) throws(RecoveryError) -> StepOutcome {
        debugPortIDCode = try stlink { () throws(STLinkError) in try link.connect() }
        targetVoltage = try? link.targetVoltage()
        return StepOutcome(bytes: 0, "\(link.name) \(link.version?.description ?? ""), SWD at \(link.swdKilohertz ?? 0) kHz" + String(cFormat: ", target at %.2f V", targetVoltage ?? 0))
    }

    public func identify(_ context: StepContext) throws(RecoveryError) -> (target: IdentifiedTarget, outcome: StepOutcome) {
        let found = try stm32 { () throws(STM32Error) in try STM32Target.identify(through: link, debugPortIDCode: debugPortIDCode) }
        target = found
        controller = STM32FlashControllers.controller(for: found, link: link)
        if !found.variant.isGenuine {
            let how = found.variant.maker == "unknown" ? "programmed as ST documents the \(found.family.name)" : "programmed with its maker's differences"
            context.notice(.warning, "this chip is not ST's: \(found.partName) (\(found.identity.description)); \(how)")
        }
        return (.stm32(found), StepOutcome(bytes: 8, found.summary))
    }

    public func check(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> (findings: [Finding], outcome: StepOutcome) {
        let target = try identified()
        let findings = plan.rule.checkSTM32(plan.firmware, programmer: .stlink, flashSize: target.flashSize)
        // Before anything is erased: this firmware must be able to program the family's flash at all.
        if !findings.contains(where: { $0.severity == .error }) {
            try stm32 { () throws(STM32Error) in try flash().checkLink() }
        }
        let image = plan.image
        return (findings, StepOutcome(bytes: image.byteCount, "\(image.byteCount) bytes at 0x\(String(image.lowestAddress ?? 0, radix: 16, uppercase: true))"))
    }

    public func isReadProtected() throws(RecoveryError) -> Bool {
        readProtected = try stm32 { () throws(STM32Error) in try flash().isReadProtected() }
        return readProtected
    }

    public func healthCheck(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> HealthVerdict {
        guard let span = plan.image.span else { return .needsRestore(bytesRead: 0, reason: "the image is empty") }
        let current = try stm32 { () throws(STM32Error) in try flash().read(UInt32(span.lowerBound), count: span.count) }
        if current == plan.image.bytes(in: UInt32(span.lowerBound)..<UInt32(span.upperBound)) {
            return .healthy(bytesRead: span.count, detail: "the bootloader is already there")
        }
        return .needsRestore(bytesRead: span.count, reason: "the flash differs from the image")
    }

    /// The whole flash and the option bytes (as the family lays them out); under read protection only
    /// the option bytes can be read.
    public func backup(_ plan: RestorePlan, to store: BackupStore, _ context: StepContext) throws(RecoveryError) -> (path: String, bytes: Int) {
        let target = try identified()
        let protected = readProtected
        let contents = protected ? nil : try stm32 { () throws(STM32Error) in try flash().read(STM32Chip.flashBase, count: target.flashSize) }
        let options = try stm32 { () throws(STM32Error) in try flash().readOptionBytes() }
        let path: String
        do {
            path = try store.saveSTM32(flash: contents, optionBytes: options, target: target, programmer: link.name, rule: plan.rule.name)
        } catch {
            throw .backupFailed("\(store.directory): \(InputFile.reason(error))")
        }
        if protected { context.notice(.warning, "the chip is read-protected: its flash cannot be read, so only the option bytes are saved") }
        return (path, (contents?.count ?? 0) + options.count)
    }

    public func unlock(_ context: StepContext) throws(RecoveryError) -> StepOutcome {
        let target = try identified()
        let done = try stm32 { () throws(STM32Error) in try flash().removeReadProtection() }
        debugPortIDCode = try stlink { () throws(STLinkError) in try link.connect() }
        if try isReadProtected() {
            throw .stm32(.controller("read protection is still active after the option bytes were reprogrammed"))
        }
        return StepOutcome(bytes: target.flashSize, "\(done) (allowed by allow_unlock)")
    }

    public func erase(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> StepOutcome {
        let target = try identified()
        let units = target.eraseUnits(holding: plan.image.segments.map(\.range))
        try stm32 { () throws(STM32Error) in
            try flash().erase(units) { done in context.progress(done: done, total: units.count) }
        }
        return StepOutcome(bytes: units.reduce(0) { $0 + $1.size }, "\(units.count) \(target.geometry.unitName)")
    }

    public func write(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> StepOutcome {
        var written = 0
        for segment in plan.image.segments {
            try stm32 { () throws(STM32Error) in
                try flash().program(segment.address, segment.bytes) { done in context.progress(done: written + done, total: plan.image.byteCount) }
            }
            written += segment.bytes.count
        }
        return StepOutcome(bytes: written, "\(written) bytes \(try stm32 { () throws(STM32Error) in try flash().programmingDescription })")
    }

    /// Reads back what was written; a mismatch is read again once, and a glitch that passes the second
    /// time is reported.
    public func verify(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> StepOutcome {
        for segment in plan.image.segments {
            let readBack = try stm32 { () throws(STM32Error) in try flash().read(segment.address, count: segment.bytes.count) }
            if let i = segment.bytes.indices.first(where: { segment.bytes[$0] != readBack[$0] }) {
                let again = try stm32 { () throws(STM32Error) in try flash().read(segment.address, count: segment.bytes.count) }
                if again != segment.bytes {
                    throw .verifyFailed(address: segment.address + UInt32(i), expected: segment.bytes[i], actual: again[i])
                }
                context.notice(.warning, String(cFormat: "read-back glitch at 0x%08X; the second read matched", segment.address + UInt32(i)))
            }
        }
        return StepOutcome(bytes: plan.image.byteCount, "\(plan.image.byteCount) bytes match")
    }

    /// Nothing after the flash: an STM32 has no fuses to write, and its read protection stays off.
    public func finishingSteps(_ plan: RestorePlan, backup: String?) -> [FinishingStep] { [] }

    public func release(_ context: StepContext) throws(RecoveryError) -> StepOutcome {
        try stlink { () throws(STLinkError) in
            try link.resetSystem()
            try link.run()
        }
        link.disconnect()
        return StepOutcome(bytes: 0, "reset; the bootloader runs")
    }

    public func abandon() { link.disconnect() }

    public func describe(into result: inout RecoveryResult) { result.stm32 = target }

    // MARK: Helpers

    private func identified() throws(RecoveryError) -> STM32Target {
        guard let target else { throw .stm32(.link(.noTarget(detail: "the chip was not identified"))) }
        return target
    }

    private func flash() throws(STM32Error) -> STM32FlashController {
        guard let controller else { throw .link(.noTarget(detail: "the chip was not identified")) }
        return controller
    }

    private func stlink<T>(_ body: () throws(STLinkError) -> T) throws(RecoveryError) -> T {
        do { return try body() } catch { throw .stm32(.link(error)) }
    }

    private func stm32<T>(_ body: () throws(STM32Error) -> T) throws(RecoveryError) -> T {
        do { return try body() } catch { throw .stm32(error) }
    }
}

extension RecoveryJob {
    /// A restore of the STM32 behind an ST-Link.
    public convenience init(link: STLink, rules: RuleSet, ruleName: String? = nil, backups: BackupStore?, sink: RecoveryEventSink) {
        self.init(target: STM32SWDTarget(link: link), rules: rules, ruleName: ruleName, backups: backups, sink: sink)
    }
}

extension BackupStore {
    /// Saves an STM32's flash (when readable) and option bytes, atomically, as `flash.bin` and
    /// `option-bytes.json`.
    public func saveSTM32(flash: [UInt8]?, optionBytes: [UInt8], target: STM32Target, programmer: String, rule: String?, date: Date = Date()) throws -> String {
        try saveFolder(named: "stm32-\(String(cFormat: "%03x", target.chipID))", date: date, manifest: [
            "part": target.chip.name, "chipID": String(cFormat: "0x%03X", target.chipID), "programmer": programmer, "rule": rule ?? "",
        ]) { folder in
            if let flash { try writeDurably(Data(flash), to: folder + "/flash.bin") }
            try writeDurably(Data(target.family.optionBytes.json(optionBytes).utf8), to: folder + "/option-bytes.json")
        }
    }
}
