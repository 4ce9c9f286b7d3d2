import AVRISP
import FirmwareImage
import Foundation
import Parts
import Rules
import Transport

/// One restore of one AVR through one ISP programmer:
/// connect → identify → select rule → static checks → health check → backup → erase → write →
/// verify → EEPROM → fuses → verify → lock → release.
///
/// Nothing destructive happens before the plan passes every check and the old contents are saved.
/// It knows programmers only through ``ISPProgrammer``, so a USBasp, an Arduino as ISP or a simulator
/// all run the same code.
public final class RecoveryJob {
    public let programmer: ISPProgrammer
    public let rules: RuleSet
    /// A rule to use instead of the first match.
    public var ruleName: String?
    /// Where backups go; nil keeps none (only when the rule allows it).
    public var backups: BackupStore?
    public let sink: RecoveryEventSink
    /// How much to read per request while backing up and verifying, so progress moves.
    public var readChunk = 1024
    /// Asked between steps: true stops the job there (a service shutting down). The step in progress
    /// always finishes, so a chip is never left mid-page.
    public var shouldStop: @Sendable () -> Bool = { false }

    /// The clock step durations are measured on: the programmer's unless set. A rehearsal over a
    /// pseudo-terminal drives the port in real time but reports the simulated chip's time.
    public var stepClock: TimeSource?

    private var result: RecoveryResult
    private var time: TimeSource { stepClock ?? programmer.time }
    /// Flash pages already read in this job (health check), reused by the backup.
    private var pagesRead: [UInt32: [UInt8]] = [:]

    public init(programmer: ISPProgrammer, rules: RuleSet, ruleName: String? = nil, backups: BackupStore?, sink: RecoveryEventSink) {
        self.programmer = programmer
        self.rules = rules
        self.ruleName = ruleName
        self.backups = backups
        self.sink = sink
        result = RecoveryResult(outcome: .failed, programmer: programmer.identity)
    }

    /// Runs the restore to its end and returns what happened; failures are in the result, never thrown.
    @discardableResult
    public func run() -> RecoveryResult {
        let start = time.now
        sink.record(.started(programmer.identity))
        var enteredProgrammingMode = false
        do {
            try perform(&enteredProgrammingMode)
        } catch {
            result.outcome = .failed
            result.failure = error
            if enteredProgrammingMode { programmer.leaveProgrammingMode() }
        }
        result.programmer = programmer.identity
        result.totalNanoseconds = time.elapsed(since: start)
        sink.record(.finished(result))
        return result
    }

    // MARK: The pipeline

    private func perform(_ entered: inout Bool) throws(RecoveryFailure) {
        try step(.connect) { () throws(RecoveryError) in
            try isp { () throws(ISPError) in try programmer.enterProgrammingMode() }
            return (0, "\(programmer.identity.name) at SCK \(programmer.identity.sck ?? "?")")
        }
        entered = true

        var part: AVRPart!
        try step(.identify) { () throws(RecoveryError) in
            let signature = try isp { () throws(ISPError) in try programmer.readSignature() }
            result.signature = signature
            if signature.meansNoTarget { throw .noTargetSignature(signature) }
            guard let found = PartCatalog.avrParts(withSignature: signature).first else { throw .unknownSignature(signature) }
            part = found
            result.part = found
            sink.record(.identified(part: found.name, id: signature.description))
            return (3, "\(found.name) (\(signature))")
        }

        var rule: Rule!
        try step(.selectRule) { () throws(RecoveryError) in
            let context = TargetContext(avrPart: part, signature: result.signature, programmer: programmer.identity.kind,
                                        serial: programmer.identity.serialNumber, port: programmer.identity.port)
            if let name = ruleName {
                guard let named = rules.rule(named: name) else { throw .noSuchRule(name) }
                if case let .avr(expected)? = named.part, expected.signature != part.signature {
                    throw .wrongPart(signature: result.signature!, found: part.name, rule: named.name, expected: expected.name)
                } else if case .stm32? = named.part {
                    throw .wrongPart(signature: result.signature!, found: part.name, rule: named.name, expected: "an STM32")
                }
                rule = named
            } else {
                guard let matched = rules.firstMatch(for: context) else {
                    throw .noRule(part: part.name, programmer: programmer.identity.name)
                }
                rule = matched
            }
            result.rule = rule.name
            sink.record(.ruleChosen(rule.name))
            return (0, rule.name)
        }

        var firmware: PreparedFirmware!
        var currentFuses = FuseSet()
        var currentLock: UInt8 = 0xFF
        try step(.check) { () throws(RecoveryError) in
            firmware = try load(rule)
            currentFuses = try isp { () throws(ISPError) in try programmer.readFuses(of: part) }
            currentLock = try isp { () throws(ISPError) in try programmer.readLock() }
            let findings = rule.check(firmware, on: part, programmer: programmer.identity.kind, currentFuses: currentFuses)
            for finding in findings where finding.severity != .error { sink.record(.notice(.check, finding.severity, finding.message)) }
            let errors = findings.filter { $0.severity == .error }
            if !errors.isEmpty { throw .refused(errors) }
            if !rule.policies.backup, backups == nil {
                sink.record(.notice(.check, .warning, "the rule turns backups off: the chip's current contents will not be saved"))
            }
            return (firmware.image.byteCount, "\(firmware.image.byteCount) bytes for \(part.name), current fuses \(currentFuses)")
        }

        let pages = pagesToWrite(firmware.image, part: part)
        var healthy = false
        try step(.healthCheck) { () throws(RecoveryError) in
            let (isHealthy, read, reason) = try healthCheck(pages: pages, rule: rule, part: part, fuses: currentFuses, lock: currentLock)
            healthy = isHealthy
            return (read, healthy ? "bootloader, fuses and lock already right" : "needs a restore: \(reason)")
        }
        if healthy {
            try step(.release) { () throws(RecoveryError) in
                programmer.leaveProgrammingMode()
                return (0, "target running")
            }
            entered = false
            result.outcome = .healthy
            return
        }

        if rule.policies.backup, let backups {
            try step(.backup) { () throws(RecoveryError) in
                let state = try readChip(part: part, fuses: currentFuses, lock: currentLock)
                do {
                    result.backupPath = try backups.save(state, part: part, signature: result.signature!,
                                                         programmer: programmer.identity.name, rule: rule.name)
                } catch {
                    throw .backupFailed("\(backups.directory): \(error.localizedDescription)")
                }
                if currentLock & 0x03 == 0 {
                    sink.record(.notice(.backup, .warning, "lock bits 0x\(String(currentLock, radix: 16, uppercase: true)) hide the memory: the backup holds what the chip shows, not its contents"))
                }
                return (state.flash.count + state.eeprom.count, result.backupPath!)
            }
        }

        try step(.erase) { () throws(RecoveryError) in
            try isp { () throws(ISPError) in try programmer.chipErase(part: part) }
            return (part.flash.size, "flash\(eepromSurvivesErase(part, currentFuses) ? "" : ", EEPROM") and lock bits erased")
        }

        let total = pages.count * part.flash.pageSize
        try step(.writeFlash) { () throws(RecoveryError) in
            try isp { () throws(ISPError) in
                try programmer.writeFlash(pages, part: part) { done in sink.record(.progress(.writeFlash, done: done, total: total)) }
            }
            return (total, "\(pages.count) pages of \(part.flash.pageSize) bytes")
        }

        try step(.verifyFlash) { () throws(RecoveryError) in
            try verify(pages, part: part)
            return (total, "\(total) bytes match")
        }

        if rule.policies.backup, rule.policies.restoreEEPROM, let backupPath = result.backupPath {
            try step(.restoreEEPROM) { () throws(RecoveryError) in
                if eepromSurvivesErase(part, currentFuses) { return (0, "EESAVE kept the EEPROM through the erase") }
                if currentLock & 0x03 == 0 { return (0, "not restored: the lock bits hid the EEPROM, so the backup holds no real contents") }
                guard let saved = try? ChipState.read(from: backupPath).eeprom else { throw .backupFailed("cannot read back \(backupPath)/eeprom.bin") }
                let bytes = saved.enumerated().filter { $0.element != 0xFF }.map { (address: $0.offset, value: $0.element) }
                guard !bytes.isEmpty else { return (0, "the EEPROM was blank") }
                try isp { () throws(ISPError) in try programmer.writeEEPROM(bytes, part: part) }
                try verifyEEPROM(bytes, part: part)
                return (bytes.count, "\(bytes.count) bytes written back")
            }
        }

        if let wanted = rule.fuses {
            var written = FuseSet()
            try step(.writeFuses) { () throws(RecoveryError) in
                let target = part.normalized(wanted)
                for byte in target.givenBytes where !part.fusesMatch(expected: FuseSet().with(byte, target[byte]!), actual: currentFuses) {
                    try isp { () throws(ISPError) in try programmer.writeFuse(byte, target[byte]!, part: part) }
                    written[byte] = target[byte]
                }
                result.fusesWritten = target
                return (written.givenBytes.count, written.givenBytes.isEmpty ? "already \(target)" : "wrote \(written)")
            }
            try step(.verifyFuses) { () throws(RecoveryError) in
                let readBack = try isp { () throws(ISPError) in try programmer.readFuses(of: part) }
                let mismatches = part.mismatches(expected: wanted, actual: readBack)
                if !mismatches.isEmpty { throw .fusesDidNotTake(mismatches) }
                return (readBack.givenBytes.count, "read back \(readBack)")
            }
        }

        if let lock = rule.lock {
            try step(.writeLock) { () throws(RecoveryError) in
                try isp { () throws(ISPError) in try programmer.writeLock(lock, part: part) }
                let readBack = try isp { () throws(ISPError) in try programmer.readLock() }
                if (readBack ^ lock) & part.lock.implementedMask != 0 { throw .lockDidNotTake(expected: lock, actual: readBack) }
                return (1, String(format: "0x%02X", readBack))
            }
        }

        try step(.release) { () throws(RecoveryError) in
            programmer.leaveProgrammingMode()
            return (0, "target running")
        }
        entered = false
        result.outcome = .restored
    }

    // MARK: Steps

    /// Runs one step: emits its start, its finish with duration and bytes, or turns its error into a failure.
    private func step(_ step: RecoveryStep, _ body: () throws(RecoveryError) -> (Int, String)) throws(RecoveryFailure) {
        if shouldStop() && step != .release {
            throw RecoveryFailure(step: step, reason: .cancelled("the service is stopping; stopped before \(step.title)" + (result.steps.last.map { " (after \($0.step.rawValue) completed)" } ?? "")), backupPath: result.backupPath)
        }
        sink.record(.stepStarted(step))
        let start = time.now
        do {
            let (bytes, detail) = try body()
            let report = StepReport(step: step, nanoseconds: time.elapsed(since: start), bytes: bytes, detail: detail)
            result.steps.append(report)
            sink.record(.stepFinished(report))
        } catch {
            var reason = error
            // A target that keeps reading busy may simply be gone: its signature tells.
            if case .programmer(.stillBusy) = error {
                do { try checkTargetStillThere(during: step) } catch { reason = error }
            }
            throw RecoveryFailure(step: step, reason: reason, backupPath: result.backupPath)
        }
    }

    private func load(_ rule: Rule) throws(RecoveryError) -> PreparedFirmware {
        do { return try rule.loadFirmware() } catch { throw .firmware(error) }
    }

    private func isp<T>(_ body: () throws(ISPError) -> T) throws(RecoveryError) -> T {
        do { return try body() } catch { throw .programmer(error) }
    }

    /// Whole pages holding data, with 0xFF where the image has none.
    private func pagesToWrite(_ image: MemoryImage, part: AVRPart) -> [FlashPage] {
        image.pagesHoldingData(pageSize: part.flash.pageSize).map { address in
            FlashPage(address: address, bytes: image.bytes(in: address..<address + UInt32(part.flash.pageSize)))
        }
    }

    /// Reads only the pages the image covers, and compares the fuses and lock already read: a healthy
    /// board costs no more than its bootloader region, and a board that needs a restore no more than the
    /// read up to its first difference — the first page alone (a bootloader's vector table: where a blank
    /// or foreign chip nearly always differs), then chunks. Returns the verdict, the bytes read, and why not.
    private func healthCheck(pages: [FlashPage], rule: Rule, part: AVRPart, fuses: FuseSet, lock: UInt8) throws(RecoveryError) -> (Bool, Int, String) {
        if let wanted = rule.fuses, let mismatch = part.mismatches(expected: wanted, actual: fuses).first {
            return (false, 0, mismatch.description)
        }
        if let wanted = rule.lock, (wanted ^ lock) & part.lock.implementedMask != 0 {
            return (false, 0, String(format: "lock is 0x%02X, expected 0x%02X", lock, wanted))
        }
        var read = 0
        for run in FlashPage.joiningContiguous(pages) {
            var offset = 0
            while offset < run.bytes.count {
                let count = min(offset == 0 ? part.flash.pageSize : max(readChunk, part.flash.pageSize), run.bytes.count - offset)
                let from = run.address + UInt32(offset)
                let bytes = try isp { () throws(ISPError) in try programmer.readFlash(from: from, count: count, part: part) }
                read += count
                remember(bytes, at: from, pageSize: part.flash.pageSize)
                if let i = bytes.indices.first(where: { run.bytes[offset + $0] != bytes[$0] }) {
                    return (false, read, String(format: "flash differs at 0x%04X", from + UInt32(i)))
                }
                offset += count
            }
        }
        return (true, read, "")
    }

    private func remember(_ bytes: [UInt8], at address: UInt32, pageSize: Int) {
        for offset in stride(from: 0, to: bytes.count, by: pageSize) {
            pagesRead[address + UInt32(offset)] = Array(bytes[offset..<min(offset + pageSize, bytes.count)])
        }
    }

    /// Reads flash (reusing pages the health check read), EEPROM, and takes the fuses and lock already read.
    private func readChip(part: AVRPart, fuses: FuseSet, lock: UInt8) throws(RecoveryError) -> ChipState {
        var flash = [UInt8](repeating: 0xFF, count: part.flash.size)
        let pageSize = part.flash.pageSize
        var address = 0
        let total = part.flash.size + part.eeprom.size
        while address < part.flash.size {
            if let cached = pagesRead[UInt32(address)] {
                flash.replaceSubrange(address..<address + pageSize, with: cached)
                address += pageSize
                continue
            }
            // Read up to the next cached page, in chunks.
            var end = address
            while end < part.flash.size, pagesRead[UInt32(end)] == nil, end - address < readChunk { end += pageSize }
            let from = address
            let bytes = try isp { () throws(ISPError) in try programmer.readFlash(from: UInt32(from), count: end - from, part: part) }
            flash.replaceSubrange(from..<end, with: bytes)
            address = end
            sink.record(.progress(.backup, done: address, total: total))
        }
        var eeprom: [UInt8] = []
        while eeprom.count < part.eeprom.size {
            let n = min(readChunk, part.eeprom.size - eeprom.count)
            let from = eeprom.count
            eeprom += try isp { () throws(ISPError) in try programmer.readEEPROM(from: from, count: n, part: part) }
            sink.record(.progress(.backup, done: part.flash.size + eeprom.count, total: total))
        }
        return ChipState(flash: flash, eeprom: eeprom, fuses: fuses, lock: lock)
    }

    /// Reads back what was written. A mismatch is read again once: a glitch on the cable passes the second
    /// time (and is reported); a bad cell or a vanished target does not.
    private func verify(_ pages: [FlashPage], part: AVRPart) throws(RecoveryError) {
        var done = 0
        let total = pages.count * part.flash.pageSize
        for run in FlashPage.joiningContiguous(pages) {
            var offset = 0
            while offset < run.bytes.count {
                let n = min(max(readChunk, part.flash.pageSize), run.bytes.count - offset)
                let address = run.address + UInt32(offset)
                let expected = Array(run.bytes[offset..<offset + n])
                var actual = try isp { () throws(ISPError) in try programmer.readFlash(from: address, count: n, part: part) }
                if actual != expected {
                    let first = expected.indices.first { expected[$0] != actual[$0] }!
                    let again = try isp { () throws(ISPError) in try programmer.readFlash(from: address, count: n, part: part) }
                    if again == expected {
                        sink.record(.notice(.verifyFlash, .warning, String(format: "read-back glitch at 0x%04X (0x%02X read as 0x%02X); the second read matched — check the ISP cable", address + UInt32(first), expected[first], actual[first])))
                        actual = again
                    } else {
                        try checkTargetStillThere(during: .verifyFlash)
                        let i = expected.indices.first { expected[$0] != again[$0] }!
                        throw .verifyFailed(address: address + UInt32(i), expected: expected[i], actual: again[i])
                    }
                }
                offset += n
                done += n
                sink.record(.progress(.verifyFlash, done: done, total: total))
            }
        }
    }

    private func verifyEEPROM(_ bytes: [(address: Int, value: UInt8)], part: AVRPart) throws(RecoveryError) {
        guard let first = bytes.first?.address, let last = bytes.last?.address else { return }
        let readBack = try isp { () throws(ISPError) in try programmer.readEEPROM(from: first, count: last - first + 1, part: part) }
        for (address, value) in bytes where readBack[address - first] != value {
            try checkTargetStillThere(during: .restoreEEPROM)
            throw .verifyFailed(address: UInt32(address), expected: value, actual: readBack[address - first])
        }
    }

    /// After a failed read-back: is the chip still on the cable? Its signature tells.
    private func checkTargetStillThere(during step: RecoveryStep) throws(RecoveryError) {
        let signature = try? programmer.readSignature()
        if signature != result.signature {
            throw .targetVanished(step: step, detail: "its signature now reads \(signature?.description ?? "nothing")")
        }
    }

    private func eepromSurvivesErase(_ part: AVRPart, _ fuses: FuseSet) -> Bool {
        guard let eesave = part.field("EESAVE"), let value = fuses[eesave.byte] else { return false }
        return eesave.isProgrammed(in: value)
    }
}

extension FuseSet {
    /// This set with `byte` set to `value`.
    func with(_ byte: FuseByte, _ value: UInt8) -> FuseSet {
        var copy = self
        copy[byte] = value
        return copy
    }
}
