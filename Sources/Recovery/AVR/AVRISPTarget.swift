import AVRISP
import BenchModel
import FirmwareImage
import FoundationEssentials
import Parts
import Rules
import Transport

/// An AVR behind an ISP programmer (USBasp, USBtinyISP, an STK500v1 sketch, a Bus Pirate, a simulator):
/// the serial-programming steps of a restore. Reads only what it must — the pages the image covers for
/// the health check, stopping at the first difference, and those pages again for the backup.
public final class AVRISPTarget: RestoreTarget {
    public let programmer: ISPProgrammer
    /// How much the health check reads per call after the first page: it stops at the first difference.
    public var readChunk = 1024

    /// How much backup and verify read per call: about 1 KiB, so progress moves, in whole requests of the
    /// programmer; where its request size does not divide 1 KiB (the USBasp's 254 bytes), the whole pages
    /// nearest sixteen requests, so that few requests carry a remainder.
    private var streamChunk: Int {
        let block = programmer.readBlockSize
        guard 1024 % block != 0, let pageSize = part?.flash.pageSize else { return readChunk }
        return (16 * block + pageSize - 1) / pageSize * pageSize
    }

    private var inProgrammingMode = false
    private var signature: Signature?
    private var part: AVRPart?
    /// The fuses as the chip has them now, and as it arrived with them (what the backup keeps).
    private var currentFuses = FuseSet()
    private var arrivedFuses = FuseSet()
    private var currentLock: UInt8 = 0xFF
    private var fusesWritten: FuseSet?
    /// Flash pages already read in this job (health check), reused by the backup.
    private var pagesRead: [UInt32: [UInt8]] = [:]

    public init(programmer: ISPProgrammer) { self.programmer = programmer }

    public var identity: ProgrammerIdentity { programmer.identity }
    public var clock: TimeSource { programmer.time }

    public func connect(_ context: StepContext) throws(RecoveryError) -> StepOutcome {
        try isp { () throws(ISPError) in try programmer.enterProgrammingMode() }
        inProgrammingMode = true
        return StepOutcome(bytes: 0, "\(programmer.identity.name) at SCK \(programmer.identity.sck ?? "?")")
    }

    public func identify(_ context: StepContext) throws(RecoveryError) -> (target: IdentifiedTarget, outcome: StepOutcome) {
        let read = try isp { () throws(ISPError) in try programmer.readSignature() }
        signature = read
        if read.meansNoTarget { throw .noTargetSignature(read) }
        guard let found = PartCatalog.avrParts(withSignature: read).first else { throw .unknownSignature(read) }
        part = found
        return (.avr(found, read), StepOutcome(bytes: 3, "\(found.name) (\(read))"))
    }

    public func check(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> (findings: [Finding], outcome: StepOutcome) {
        let part = try identified()
        currentFuses = try isp { () throws(ISPError) in try programmer.readFuses(of: part) }
        arrivedFuses = currentFuses
        currentLock = try isp { () throws(ISPError) in try programmer.readLock() }
        let findings = plan.rule.check(plan.firmware, on: part, programmer: programmer.identity.kind, currentFuses: currentFuses)
        return (findings, StepOutcome(bytes: plan.image.byteCount, "\(plan.image.byteCount) bytes for \(part.name), current fuses \(currentFuses)"))
    }

    /// Lock bits hide an AVR's memory from reads, but the chip erase that every restore does clears them:
    /// nothing needs an unlock of its own.
    public func isReadProtected() throws(RecoveryError) -> Bool { false }

    public func unlock(_ context: StepContext) throws(RecoveryError) -> StepOutcome {
        StepOutcome(bytes: 0, "nothing to unlock: the chip erase clears the lock bits")
    }

    /// Compares the fuses and lock already read, then reads only the pages the image covers, up to the
    /// first difference — the first page alone (a bootloader's vector table: where a blank or foreign chip
    /// nearly always differs), then chunks.
    public func healthCheck(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> HealthVerdict {
        let part = try identified()
        if let wanted = plan.rule.fuses, let mismatch = part.mismatches(expected: wanted, actual: currentFuses).first {
            return .needsRestore(bytesRead: 0, reason: mismatch.description)
        }
        if let wanted = plan.rule.lock, (wanted ^ currentLock) & part.lock.implementedMask != 0 {
            return .needsRestore(bytesRead: 0, reason: String(cFormat: "lock is 0x%02X, expected 0x%02X", currentLock, wanted))
        }
        var read = 0
        for run in FlashPage.joiningContiguous(pages(plan, part)) {
            var offset = 0
            while offset < run.bytes.count {
                let count = min(offset == 0 ? part.flash.pageSize : max(readChunk, part.flash.pageSize), run.bytes.count - offset)
                let from = run.address + UInt32(offset)
                let bytes = try isp { () throws(ISPError) in try programmer.readFlash(from: from, count: count, part: part) }
                read += count
                remember(bytes, at: from, pageSize: part.flash.pageSize)
                if let i = bytes.indices.first(where: { run.bytes[offset + $0] != bytes[$0] }) {
                    return .needsRestore(bytesRead: read, reason: String(cFormat: "flash differs at 0x%04X", from + UInt32(i)))
                }
                offset += count
            }
        }
        return .healthy(bytesRead: read, detail: "bootloader, fuses and lock already right")
    }

    /// A factory chip divides its clock by 8 (CKDIV8), which keeps the SCK below a quarter of an eighth of
    /// its crystal. When the rule's final low fuse clears CKDIV8 and keeps the oscillator class the chip
    /// runs on now, clearing that one bit first changes nothing the end of the job would not: the chip runs
    /// from the same oscillator at the speed the rule gives it anyway. Only a programmer that picks its
    /// SCK gains from it.
    public func clockRaise(for plan: RestorePlan) -> ClockRaise? {
        guard programmer.adaptsSCK, let part, let wanted = plan.rule.fuses?.low, let current = currentFuses.low,
              let divider = part.field("CKDIV8"), divider.byte == .low,
              divider.isProgrammed(in: current), !divider.isProgrammed(in: wanted),
              currentLock & 0x03 == 0x03 else { return nil }   // lock bits set also lock the fuses until the erase
        guard let now = part.clock(low: current), let final = part.clock(low: wanted),
              now.source == final.source, now.source != .reserved else { return nil }
        let raised = current | divider.mask
        return ClockRaise(byte: .low, from: current, to: raised,
                          detail: "CKDIV8 cleared early, as the rule's low fuse \(String(cFormat: "0x%02X", wanted)) clears it: the \(now.detail) runs undivided",
                          original: arrivedFuses)
    }

    public func raiseClock(_ raise: ClockRaise, _ context: StepContext) throws(RecoveryError) -> StepOutcome {
        let part = try identified()
        let slower = programmer.identity.sck ?? "?"
        try isp { () throws(ISPError) in try programmer.writeFuse(raise.byte, raise.to, part: part) }
        // The chip latches its clock fuses at reset: release RESET, then enter programming mode again,
        // from the fastest SCK.
        programmer.leaveProgrammingMode()
        inProgrammingMode = false
        programmer.forgetTargetSpeed()
        try isp { () throws(ISPError) in try programmer.enterProgrammingMode() }
        inProgrammingMode = true
        try checkTargetStillThere(during: .raiseClock)
        let readBack = try isp { () throws(ISPError) in try programmer.readFuses(of: part) }
        let expected = currentFuses.with(raise.byte, raise.to)
        let mismatches = part.mismatches(expected: expected, actual: readBack)
        if !mismatches.isEmpty { throw .fusesDidNotTake(mismatches) }
        currentFuses = readBack
        return StepOutcome(bytes: 1, "\(raise.byte.rawValue) fuse " + String(cFormat: "0x%02X → 0x%02X (CKDIV8 cleared); ", raise.from, raise.to)
                                     + "SCK \(slower) → \(programmer.identity.sck ?? "?")")
    }

    public func backup(_ plan: RestorePlan, to store: BackupStore, _ context: StepContext) throws(RecoveryError) -> (path: String, bytes: Int) {
        let part = try identified()
        let state = try readChip(part: part, context)
        let path: String
        do {
            path = try store.save(state, part: part, signature: signature ?? part.signature, programmer: programmer.identity.name, rule: plan.rule.name)
        } catch {
            throw .backupFailed("\(store.directory): \(InputFile.reason(error))")
        }
        if currentLock & 0x03 == 0 {
            context.notice(.warning, "lock bits 0x\(String(currentLock, radix: 16, uppercase: true)) hide the memory: the backup holds what the chip shows, not its contents")
        }
        return (path, state.flash.count + state.eeprom.count)
    }

    public func erase(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> StepOutcome {
        let part = try identified()
        try isp { () throws(ISPError) in try programmer.chipErase(part: part) }
        // Programming enable answered again; the whole signature says it is still the same chip.
        try checkTargetStillThere(during: .erase)
        return StepOutcome(bytes: part.flash.size, "flash\(eepromSurvivesErase(part) ? "" : ", EEPROM") and lock bits erased")
    }

    /// Programs the image's pages. The chip erase left every page reading 0xFF and programming only
    /// clears bits, so a page of the image that is all 0xFF (the padding of a full-flash image) is on the
    /// chip already: it is not written, and the verify reads it back all the same.
    public func write(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> StepOutcome {
        let part = try identified()
        let all = pages(plan, part)
        let pages = all.filter { $0.bytes.contains { $0 != 0xFF } }
        let total = pages.count * part.flash.pageSize
        try isp { () throws(ISPError) in
            try programmer.writeFlash(pages, part: part) { done in context.progress(done: done, total: total) }
        }
        let blank = all.count - pages.count
        return StepOutcome(bytes: total, "\(pages.count) pages of \(part.flash.pageSize) bytes" + (blank > 0 ? " (\(blank) blank pages of the image left as the erase left them)" : ""))
    }

    /// Reads back what was written. A mismatch is read again once: a glitch on the cable passes the second
    /// time (and is reported); a bad cell or a vanished target does not.
    public func verify(_ plan: RestorePlan, _ context: StepContext) throws(RecoveryError) -> StepOutcome {
        let part = try identified()
        let pages = pages(plan, part)
        var done = 0
        let total = pages.count * part.flash.pageSize
        for run in FlashPage.joiningContiguous(pages) {
            var offset = 0
            while offset < run.bytes.count {
                let n = min(max(streamChunk, part.flash.pageSize), run.bytes.count - offset)
                let address = run.address + UInt32(offset)
                let expected = Array(run.bytes[offset..<offset + n])
                let actual = try isp { () throws(ISPError) in try programmer.readFlash(from: address, count: n, part: part) }
                if actual != expected {
                    let first = expected.indices.first { expected[$0] != actual[$0] }!
                    let again = try isp { () throws(ISPError) in try programmer.readFlash(from: address, count: n, part: part) }
                    if again == expected {
                        context.notice(.warning, String(cFormat: "read-back glitch at 0x%04X (0x%02X read as 0x%02X); the second read matched — check the ISP cable", address + UInt32(first), expected[first], actual[first]))
                    } else {
                        try checkTargetStillThere(during: .verifyFlash)
                        let i = expected.indices.first { expected[$0] != again[$0] }!
                        throw .verifyFailed(address: address + UInt32(i), expected: expected[i], actual: again[i])
                    }
                }
                offset += n
                done += n
                context.progress(done: done, total: total)
            }
        }
        return StepOutcome(bytes: total, "\(total) bytes match")
    }

    public func finishingSteps(_ plan: RestorePlan, backup: String?) -> [FinishingStep] {
        guard let part else { return [] }
        var steps: [FinishingStep] = []
        let rule = plan.rule
        if rule.policies.backup, rule.policies.restoreEEPROM, let backup {
            steps.append(FinishingStep(.restoreEEPROM) { [self] (_) throws(RecoveryError) in try restoreEEPROM(from: backup, part: part) })
        }
        if let wanted = rule.fuses {
            steps.append(FinishingStep(.writeFuses) { [self] (_) throws(RecoveryError) in
                let target = part.normalized(wanted)
                var written = FuseSet()
                for byte in target.givenBytes where !part.fusesMatch(expected: FuseSet().with(byte, target[byte]!), actual: currentFuses) {
                    try isp { () throws(ISPError) in try programmer.writeFuse(byte, target[byte]!, part: part) }
                    written[byte] = target[byte]
                }
                fusesWritten = target
                return StepOutcome(bytes: written.givenBytes.count, written.givenBytes.isEmpty ? "already \(target)" : "wrote \(written)")
            })
            steps.append(FinishingStep(.verifyFuses) { [self] (_) throws(RecoveryError) in
                let readBack = try isp { () throws(ISPError) in try programmer.readFuses(of: part) }
                let mismatches = part.mismatches(expected: wanted, actual: readBack)
                if !mismatches.isEmpty { throw .fusesDidNotTake(mismatches) }
                return StepOutcome(bytes: readBack.givenBytes.count, "read back \(readBack)")
            })
        }
        if let lock = rule.lock {
            steps.append(FinishingStep(.writeLock) { [self] (_) throws(RecoveryError) in
                try isp { () throws(ISPError) in try programmer.writeLock(lock, part: part) }
                let readBack = try isp { () throws(ISPError) in try programmer.readLock() }
                if (readBack ^ lock) & part.lock.implementedMask != 0 { throw .lockDidNotTake(expected: lock, actual: readBack) }
                return StepOutcome(bytes: 1, String(cFormat: "0x%02X", readBack))
            })
        }
        return steps
    }

    public func release(_ context: StepContext) throws(RecoveryError) -> StepOutcome {
        programmer.leaveProgrammingMode()
        inProgrammingMode = false
        return StepOutcome(bytes: 0, "target running")
    }

    public func abandon() {
        if inProgrammingMode { programmer.leaveProgrammingMode() }
        inProgrammingMode = false
    }

    /// A target that keeps reading busy may simply be gone: its signature tells.
    public func explain(_ error: RecoveryError, during step: RecoveryStep) -> RecoveryError {
        guard case .programmer(.stillBusy) = error else { return error }
        do { try checkTargetStillThere(during: step) } catch let vanished { return vanished }
        return error
    }

    public func describe(into result: inout RecoveryResult) {
        result.signature = signature
        result.part = part
        if let fusesWritten { result.fusesWritten = fusesWritten }
    }

    // MARK: Helpers

    private func identified() throws(RecoveryError) -> AVRPart {
        guard let part else { throw .noTargetSignature(signature ?? Signature(0xFF, 0xFF, 0xFF)) }
        return part
    }

    private func isp<T>(_ body: () throws(ISPError) -> T) throws(RecoveryError) -> T {
        do { return try body() } catch { throw .programmer(error) }
    }

    /// Whole pages holding data, with 0xFF where the image has none.
    private func pages(_ plan: RestorePlan, _ part: AVRPart) -> [FlashPage] {
        plan.image.pagesHoldingData(pageSize: part.flash.pageSize).map { address in
            FlashPage(address: address, bytes: plan.image.bytes(in: address..<address + UInt32(part.flash.pageSize)))
        }
    }

    private func remember(_ bytes: [UInt8], at address: UInt32, pageSize: Int) {
        for offset in stride(from: 0, to: bytes.count, by: pageSize) {
            pagesRead[address + UInt32(offset)] = Array(bytes[offset..<min(offset + pageSize, bytes.count)])
        }
    }

    /// Reads flash (reusing pages the health check read), EEPROM, and takes the fuses and lock already read.
    private func readChip(part: AVRPart, _ context: StepContext) throws(RecoveryError) -> ChipState {
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
            while end < part.flash.size, pagesRead[UInt32(end)] == nil, end - address < streamChunk { end += pageSize }
            let from = address
            let bytes = try isp { () throws(ISPError) in try programmer.readFlash(from: UInt32(from), count: end - from, part: part) }
            flash.replaceSubrange(from..<end, with: bytes)
            address = end
            context.progress(done: address, total: total)
        }
        var eeprom: [UInt8] = []
        while eeprom.count < part.eeprom.size {
            let n = min(streamChunk, part.eeprom.size - eeprom.count)
            let from = eeprom.count
            eeprom += try isp { () throws(ISPError) in try programmer.readEEPROM(from: from, count: n, part: part) }
            context.progress(done: part.flash.size + eeprom.count, total: total)
        }
        return ChipState(flash: flash, eeprom: eeprom, fuses: arrivedFuses, lock: currentLock)
    }

    private func restoreEEPROM(from backup: String, part: AVRPart) throws(RecoveryError) -> StepOutcome {
        if eepromSurvivesErase(part) { return StepOutcome(bytes: 0, "EESAVE kept the EEPROM through the erase") }
        if currentLock & 0x03 == 0 { return StepOutcome(bytes: 0, "not restored: the lock bits hid the EEPROM, so the backup holds no real contents") }
        guard let saved = try? ChipState.read(from: backup).eeprom else { throw .backupFailed("cannot read back \(backup)/eeprom.bin") }
        let bytes = saved.enumerated().filter { $0.element != 0xFF }.map { (address: $0.offset, value: $0.element) }
        guard !bytes.isEmpty else { return StepOutcome(bytes: 0, "the EEPROM was blank") }
        try isp { () throws(ISPError) in try programmer.writeEEPROM(bytes, part: part) }
        guard let first = bytes.first?.address, let last = bytes.last?.address else { return StepOutcome(bytes: 0, "") }
        let readBack = try isp { () throws(ISPError) in try programmer.readEEPROM(from: first, count: last - first + 1, part: part) }
        for (address, value) in bytes where readBack[address - first] != value {
            try checkTargetStillThere(during: .restoreEEPROM)
            throw .verifyFailed(address: UInt32(address), expected: value, actual: readBack[address - first])
        }
        return StepOutcome(bytes: bytes.count, "\(bytes.count) bytes written back")
    }

    /// After the erase or a failed read-back: is the chip still on the cable? Its whole signature tells.
    private func checkTargetStillThere(during step: RecoveryStep) throws(RecoveryError) {
        // A programmer that fails here is the programmer's failure, not a vanished target.
        let now = try isp { () throws(ISPError) in try programmer.readSignature() }
        if now != signature {
            throw .targetVanished(step: step, detail: "its signature now reads \(now)")
        }
    }

    private func eepromSurvivesErase(_ part: AVRPart) -> Bool {
        guard let eesave = part.field("EESAVE"), let value = currentFuses[eesave.byte] else { return false }
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

extension RecoveryJob {
    /// A restore of the AVR behind an ISP programmer.
    public convenience init(programmer: ISPProgrammer, rules: RuleSet, ruleName: String? = nil, backups: BackupStore?, sink: RecoveryEventSink) {
        self.init(target: AVRISPTarget(programmer: programmer), rules: rules, ruleName: ruleName, backups: backups, sink: sink)
    }
}
