import FirmwareImage
import Foundation
import Parts
import Rules
import STLink
import Transport

/// One restore of an STM32F1 through an ST-Link: connect (version, supply, SWD, IDCODE) → identify
/// (chip id, flash size) → select rule → static checks → read protection (removed only when the rule
/// allows it, which mass-erases the chip) → health check → backup → erase the pages the image covers →
/// program → verify → reset and run.
public final class STM32RecoveryJob {
    public let link: STLink
    public let rules: RuleSet
    public var ruleName: String?
    public var backups: BackupStore?
    public let sink: RecoveryEventSink

    private let flash: STM32F1Flash
    private var result: RecoveryResult

    public init(link: STLink, rules: RuleSet, ruleName: String? = nil, backups: BackupStore?, sink: RecoveryEventSink) {
        self.link = link
        self.rules = rules
        self.ruleName = ruleName
        self.backups = backups
        self.sink = sink
        flash = STM32F1Flash(link: link)
        result = RecoveryResult(outcome: .failed, programmer: link.identity)
    }

    @discardableResult
    public func run() -> RecoveryResult {
        let start = link.time.now
        sink.record(.started(result.programmer))
        do {
            try perform()
        } catch {
            result.outcome = .failed
            result.failure = error
            link.disconnect()
        }
        result.programmer.firmware = link.version?.description
        result.totalNanoseconds = link.time.elapsed(since: start)
        sink.record(.finished(result))
        return result
    }

    private func perform() throws(RecoveryFailure) {
        var idcode: UInt32 = 0
        try step(.connect) { () throws(RecoveryError) in
            idcode = try stlink { () throws(STLinkError) in try link.connect() }
            result.programmer = link.identity
            result.programmer.targetVoltage = try? link.targetVoltage()
            return (0, "\(link.name) \(link.version?.description ?? ""), SWD at \(link.swdKilohertz ?? 0) kHz" + String(format: ", target at %.2f V", result.programmer.targetVoltage ?? 0))
        }

        var target: STM32Target!
        try step(.identify) { () throws(RecoveryError) in
            target = try stm32 { () throws(STM32Error) in try flash.identify(debugPortIDCode: idcode) }
            result.stm32 = target
            sink.record(.identified(part: target.chip.name, id: String(format: "0x%03X", target.chipID)))
            if let clone = target.cloneName { sink.record(.notice(.identify, .warning, "this chip is \(clone); it usually programs like an STM32F103")) }
            return (8, target.summary)
        }

        var rule: Rule!
        try step(.selectRule) { () throws(RecoveryError) in
            if let name = ruleName {
                guard let named = rules.rule(named: name) else { throw .noSuchRule(name) }
                guard case .stm32? = named.part else {
                    throw .wrongPart(signature: Signature(0, 0, 0), found: target.chip.name, rule: named.name, expected: named.part?.description ?? "another part")
                }
                rule = named
            } else {
                let context = TargetContext(chipID: target.chipID, programmer: .stlink, serial: result.programmer.serialNumber, port: result.programmer.port)
                guard let matched = rules.firstMatch(for: context) else { throw .noRule(part: target.chip.name, programmer: link.name) }
                rule = matched
            }
            result.rule = rule.name
            sink.record(.ruleChosen(rule.name))
            return (0, rule.name)
        }

        var image: MemoryImage!
        try step(.check) { () throws(RecoveryError) in
            let firmware = try load(rule)
            let findings = rule.checkSTM32(firmware, programmer: .stlink, flashSize: target.flashSize)
            for finding in findings where finding.severity != .error { sink.record(.notice(.check, finding.severity, finding.message)) }
            let errors = findings.filter { $0.severity == .error }
            if !errors.isEmpty { throw .refused(errors) }
            // Before anything is erased: this firmware must be able to program F1 flash at all.
            if !link.canWriteHalfWords {
                throw .stm32(.link(.firmwareTooOld(version: link.version?.description ?? "?", needs: "16-bit memory writes (firmware J26 or later), which STM32F1 flash programming needs")))
            }
            image = firmware.image
            return (image.byteCount, "\(image.byteCount) bytes at 0x\(String(image.lowestAddress ?? 0, radix: 16, uppercase: true))")
        }

        let protected = try stm32Step { () throws(STM32Error) in try flash.isReadProtected() }
        if protected {
            guard rule.policies.allowUnlock else {
                throw RecoveryFailure(step: .unlock, reason: .protectionNotAllowed(rule: rule.name), backupPath: nil)
            }
            if rule.policies.backup, let backups {
                try step(.backup) { () throws(RecoveryError) in
                    let options = try stm32 { () throws(STM32Error) in try flash.readOptionBytes() }
                    result.backupPath = try save(flash: nil, optionBytes: options, target: target, rule: rule, to: backups)
                    sink.record(.notice(.backup, .warning, "the chip is read-protected: its flash cannot be read, so only the option bytes are saved"))
                    return (options.count, result.backupPath!)
                }
            }
            try step(.unlock) { () throws(RecoveryError) in
                try stm32 { () throws(STM32Error) in try flash.removeReadProtection() }
                idcode = try stlink { () throws(STLinkError) in try link.connect() }
                if try stm32({ () throws(STM32Error) in try flash.isReadProtected() }) {
                    throw .stm32(.controller("read protection is still active after the option bytes were reprogrammed"))
                }
                return (target.flashSize, "option bytes erased, RDP = 0xA5: the chip mass-erased its flash (allowed by allow_unlock)")
            }
        } else {
            var healthy = false
            try step(.healthCheck) { () throws(RecoveryError) in
                let span = image.span!
                let current = try stm32 { () throws(STM32Error) in try flash.read(UInt32(span.lowerBound), count: span.count) }
                healthy = current == image.bytes(in: UInt32(span.lowerBound)..<UInt32(span.upperBound))
                return (span.count, healthy ? "the bootloader is already there" : "needs a restore")
            }
            if healthy {
                try release()
                result.outcome = .healthy
                return
            }
            if rule.policies.backup, let backups {
                try step(.backup) { () throws(RecoveryError) in
                    let contents = try stm32 { () throws(STM32Error) in try flash.read(STM32Chip.flashBase, count: target.flashSize) }
                    let options = try stm32 { () throws(STM32Error) in try flash.readOptionBytes() }
                    result.backupPath = try save(flash: contents, optionBytes: options, target: target, rule: rule, to: backups)
                    return (contents.count + options.count, result.backupPath!)
                }
            }
        }

        let pageSize = UInt32(target.chip.pageSize)
        let pages = image.pagesHoldingData(pageSize: Int(pageSize))
        try step(.erase) { () throws(RecoveryError) in
            try stm32 { () throws(STM32Error) in
                try flash.erasePages(pages) { done in sink.record(.progress(.erase, done: done, total: pages.count)) }
            }
            return (pages.count * Int(pageSize), "\(pages.count) pages of \(pageSize) bytes")
        }

        try step(.writeFlash) { () throws(RecoveryError) in
            var written = 0
            for segment in image.segments {
                try stm32 { () throws(STM32Error) in
                    try flash.program(segment.address, segment.bytes) { done in
                        sink.record(.progress(.writeFlash, done: written + done, total: image.byteCount))
                    }
                }
                written += segment.bytes.count
            }
            return (written, "\(written) bytes in half-words")
        }

        try step(.verifyFlash) { () throws(RecoveryError) in
            for segment in image.segments {
                let readBack = try stm32 { () throws(STM32Error) in try flash.read(segment.address, count: segment.bytes.count) }
                if let i = segment.bytes.indices.first(where: { segment.bytes[$0] != readBack[$0] }) {
                    let again = try stm32 { () throws(STM32Error) in try flash.read(segment.address, count: segment.bytes.count) }
                    if again != segment.bytes {
                        throw .verifyFailed(address: segment.address + UInt32(i), expected: segment.bytes[i], actual: again[i])
                    }
                    sink.record(.notice(.verifyFlash, .warning, String(format: "read-back glitch at 0x%08X; the second read matched", segment.address + UInt32(i))))
                }
            }
            return (image.byteCount, "\(image.byteCount) bytes match")
        }

        try release()
        result.outcome = .restored
    }

    private func release() throws(RecoveryFailure) {
        try step(.release) { () throws(RecoveryError) in
            try stlink { () throws(STLinkError) in
                try link.resetSystem()
                try link.run()
            }
            link.disconnect()
            return (0, "reset; the bootloader runs")
        }
    }

    // MARK: Helpers

    private func save(flash contents: [UInt8]?, optionBytes: [UInt8], target: STM32Target, rule: Rule, to store: BackupStore) throws(RecoveryError) -> String {
        do {
            return try store.saveSTM32(flash: contents, optionBytes: optionBytes, target: target, programmer: link.name, rule: rule.name)
        } catch {
            throw .backupFailed("\(store.directory): \(error.localizedDescription)")
        }
    }

    private func step(_ step: RecoveryStep, _ body: () throws(RecoveryError) -> (Int, String)) throws(RecoveryFailure) {
        sink.record(.stepStarted(step))
        let start = link.time.now
        do {
            let (bytes, detail) = try body()
            let report = StepReport(step: step, nanoseconds: link.time.elapsed(since: start), bytes: bytes, detail: detail)
            result.steps.append(report)
            sink.record(.stepFinished(report))
        } catch {
            throw RecoveryFailure(step: step, reason: error, backupPath: result.backupPath)
        }
    }

    private func load(_ rule: Rule) throws(RecoveryError) -> PreparedFirmware {
        do { return try rule.loadFirmware() } catch { throw .firmware(error) }
    }

    private func stm32Step<T>(_ body: () throws(STM32Error) -> T) throws(RecoveryFailure) -> T {
        do { return try body() } catch { throw RecoveryFailure(step: .check, reason: .stm32(error), backupPath: nil) }
    }

    private func stlink<T>(_ body: () throws(STLinkError) -> T) throws(RecoveryError) -> T {
        do { return try body() } catch { throw .stm32(.link(error)) }
    }

    private func stm32<T>(_ body: () throws(STM32Error) -> T) throws(RecoveryError) -> T {
        do { return try body() } catch { throw .stm32(error) }
    }
}

/// The STM32 option bytes as JSON: RDP, USER, Data0/1 and the write-protection bytes.
public func optionBytesJSON(_ bytes: [UInt8]) -> String {
    let fields = ["rdp": bytes[0], "user": bytes[2], "data0": bytes[4], "data1": bytes[6]]
    let wrp = [bytes[8], bytes[10], bytes[12], bytes[14]]
    return "{" + fields.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ")
        + ", \"wrp\": [" + wrp.map(String.init).joined(separator: ", ") + "]}\n"
}

extension BackupStore {
    /// Saves an STM32's flash (when readable) and option bytes, atomically, as `flash.bin` and
    /// `option-bytes.json`.
    public func saveSTM32(flash: [UInt8]?, optionBytes: [UInt8], target: STM32Target, programmer: String, rule: String?, date: Date = Date()) throws -> String {
        try saveFolder(named: "stm32-\(String(format: "%03x", target.chipID))", date: date, manifest: [
            "part": target.chip.name, "chipID": String(format: "0x%03X", target.chipID), "programmer": programmer, "rule": rule ?? "",
        ]) { folder in
            if let flash { try writeDurably(Data(flash), to: folder + "/flash.bin") }
            try writeDurably(Data(optionBytesJSON(optionBytes).utf8), to: folder + "/option-bytes.json")
        }
    }
}
