import BenchModel
import FirmwareImage
import Parts

/// Why a rule's firmware cannot be used.
public enum RuleFirmwareError: Error, Equatable, Sendable, CustomStringConvertible {
    case file(FirmwareFileError)
    /// The file is not there; `known` says what the pinned digest or the name is and where it comes from.
    case missing(path: String, pinned: SHA256Digest?, known: KnownBootloader?)
    case digestMismatch(path: String, pinned: SHA256Digest, actual: SHA256Digest)
    case binaryForAVR(path: String)
    case overlap(application: String, bootloader: String, MemoryImageError)

    public var description: String {
        switch self {
        case let .file(error): return error.description
        case let .missing(path, pinned, known):
            var text = "\(path): no such file"
            if let pinned { text += "; the rule pins sha256 \(pinned)" }
            if let known {
                text += known.sha256 != nil && known.sha256 == pinned ? ", which is " : "; a file of this name is "
                text += "\(known.summary), from \(known.origin)"
            }
            return text
        case let .digestMismatch(path, pinned, actual):
            return "\(path): sha256 is \(actual), but the rule pins \(pinned); refusing a changed file"
        case let .binaryForAVR(path):
            return "\(path): a raw binary carries no address; give AVR bootloaders as Intel HEX"
        case let .overlap(application, bootloader, error):
            return "cannot merge \(application) with \(bootloader): \(error)"
        }
    }
}

/// A rule's firmware, read from disk, checked against its pins and merged into one image.
public struct PreparedFirmware: Sendable {
    public let bootloader: FirmwareFile?
    public let application: FirmwareFile?
    /// What an ISP or SWD restore writes: the bootloader, merged with the application if the rule has
    /// one (the application alone for a rule without a bootloader).
    public let image: MemoryImage

    /// The digest that names what the job writes, for the restore record.
    public var sha256: SHA256Digest { (bootloader ?? application)!.sha256 }
    /// What the EEPROM gets after a flash through the bootloader, when the rule says.
    public internal(set) var eeprom: EEPROMContents? = nil
}

/// A rule's EEPROM, read from disk.
public enum EEPROMContents: Sendable {
    case erase
    case image(FirmwareFile)

    /// The bytes to write on a part with `size` bytes of EEPROM, by address.
    public func segments(size: Int) -> [(address: Int, bytes: [UInt8])] {
        switch self {
        case .erase: return [(0, [UInt8](repeating: 0xFF, count: size))]
        case let .image(file): return file.image.segments.map { (Int($0.address), $0.bytes) }
        }
    }

    /// Why it does not fit a part with `size` bytes of EEPROM, or nil.
    public func misfit(size: Int, part: String) -> String? {
        guard case let .image(file) = self, let span = file.image.span, span.upperBound > UInt64(size) else { return nil }
        return "the EEPROM image \(file.path) reaches " + String(cFormat: "0x%04llX", span.upperBound - 1) + ", beyond the \(size) bytes of EEPROM of \(part)"
    }
}

extension Rule {
    /// Loads the bootloader (and application), verifies pinned digests, and merges them.
    /// Raw binaries are placed at the STM32 flash base (an application at its `application_address`).
    public func loadFirmware() throws(RuleFirmwareError) -> PreparedFirmware {
        // A rule that names only the USB ids of an STM32 bootloader is for an STM32 too.
        let isSTM32 = parts.first?.isSTM32 ?? [match.usb, expectUSB].contains { usb in
            DeviceCatalog.builtIn.entries.contains { entry in
                guard entry.usb == usb, case let .bootloader(kind) = entry.role else { return false }
                return kind.isSTM32
            }
        }
        func load(_ reference: FirmwareReference) throws(RuleFirmwareError) -> FirmwareFile {
            let file: FirmwareFile
            let base = reference == application ? applicationAddress ?? (isSTM32 ? STM32Chip.flashBase : 0) : isSTM32 ? STM32Chip.flashBase : 0
            do { file = try FirmwareFile(path: reference.path, binaryBase: base) } catch {
                if case .missing = error {
                    throw .missing(path: reference.path, pinned: reference.sha256, known: KnownBootloaders.entry(forPath: reference.path, pinned: reference.sha256))
                }
                throw .file(error)
            }
            // After the read, so that a missing file is reported as missing whatever its name.
            // A rule for any part that only flashes an application (`flash FILE`) takes a raw binary too:
            // the bootloader it meets places it.
            if !isSTM32, file.format == .binary, !(parts.isEmpty && bootloader == nil) { throw .binaryForAVR(path: reference.path) }
            if let pinned = reference.sha256, pinned != file.sha256 {
                throw .digestMismatch(path: reference.path, pinned: pinned, actual: file.sha256)
            }
            return file
        }
        var prepared = try loadImages(load)
        switch eeprom {
        case nil: break
        case .erase: prepared.eeprom = .erase
        case let .write(reference):
            // An EEPROM image has no flash base: a raw binary starts at EEPROM address 0.
            let file: FirmwareFile
            do { file = try FirmwareFile(path: reference.path, binaryBase: 0) } catch {
                if case .missing = error { throw .missing(path: reference.path, pinned: reference.sha256, known: nil) }
                throw .file(error)
            }
            if let pinned = reference.sha256, pinned != file.sha256 { throw .digestMismatch(path: reference.path, pinned: pinned, actual: file.sha256) }
            prepared.eeprom = .image(file)
        }
        return prepared
    }

    private func loadImages(_ load: (FirmwareReference) throws(RuleFirmwareError) -> FirmwareFile) throws(RuleFirmwareError) -> PreparedFirmware {
        let app = try application.map { (reference) throws(RuleFirmwareError) in try load(reference) }
        guard let bootloader else { return PreparedFirmware(bootloader: nil, application: app, image: app!.image) }
        let boot = try load(bootloader)
        guard let app else { return PreparedFirmware(bootloader: boot, application: nil, image: boot.image) }
        do {
            let merged = try MemoryImage.merging(application: app.image, bootloader: boot.image)
            return PreparedFirmware(bootloader: boot, application: app, image: merged)
        } catch {
            throw .overlap(application: app.path, bootloader: boot.path, error)
        }
    }

    /// The static checks that must pass before anything is erased: the programmer can address the part,
    /// the fuses are safe, and the image sits where the fuses send reset.
    /// - Parameter currentFuses: the chip's fuses as read, when a chip is at hand.
    public func check(_ firmware: PreparedFirmware, on part: AVRPart, programmer: ProgrammerKind?, currentFuses: FuseSet? = nil) -> [Finding] {
        var findings: [Finding] = []
        if let refusal = part.restoreRefusal { findings.append(Finding(.error, .partNotRestorable, refusal)) }
        let programmers = programmer.map { [$0] } ?? (match.programmer.map { [$0] } ?? [])
        for kind in programmers {
            if !kind.programsAVR {
                findings.append(Finding(.error, .wrongProgrammer, "\(kind) programs STM32 chips over SWD, not \(part.name)"))
            }
            if let limit = kind.flashAddressLimit, part.flash.size > limit {
                findings.append(Finding(.error, .programmerCannotAddress,
                    "\(kind) addresses only the first \(limit / 1024) KiB of flash, and \(part.name) has \(part.flash.size / 1024) KiB: it would write the bootloader to the wrong place and fail verification; use a USBasp, an Arduino as ISP or a Bus Pirate"))
            }
        }
        if programmer == nil, match.programmer == nil, part.flash.size > 0x10000 {
            findings.append(Finding(.note, .programmerCannotAddress, "USBtinyISP cannot restore \(part.name) (more than 64 KiB of flash); this rule will refuse it"))
        }
        let effective = fuses ?? FuseSet()
        findings += part.lint(effective, board: clock, current: currentFuses, allowUnsafe: policies.allowUnsafeFuses)
        // Placement is judged with the fuses the chip will have: the rule's, else the chip's own.
        var placementFuses = currentFuses ?? FuseSet()
        for byte in effective.givenBytes { placementFuses[byte] = effective[byte] }
        findings += part.checkPlacement(of: firmware.image, fuses: placementFuses)
        if let lock, lock & ~part.lock.implementedMask != ~part.lock.implementedMask {
            findings.append(Finding(.note, .unimplementedLockBits, "lock \(String(cFormat: "0x%02X", lock)): bits above LB/BLB do not exist on \(part.name) and read back as anything"))
        }
        if policies.allowUnlock {
            findings.append(Finding(.warning, .notForThisFamily, "allow_unlock applies to STM32 read protection; it has no effect on \(part.name)"))
        }
        return findings
    }

    /// The static checks for an STM32 rule: the binary fits at the flash base, no AVR-only settings.
    /// - Parameter flashSize: the chip's flash size in bytes, when a chip is at hand.
    public func checkSTM32(_ firmware: PreparedFirmware, programmer: ProgrammerKind?, flashSize: Int? = nil) -> [Finding] {
        var findings: [Finding] = []
        if let kind = programmer ?? match.programmer, kind != .stlink {
            findings.append(Finding(.error, .wrongProgrammer, "\(kind) is an AVR ISP programmer; STM32 chips need an ST-Link"))
        }
        if fuses != nil { findings.append(Finding(.error, .notForThisFamily, "fuses are AVR settings; an STM32 has option bytes instead")) }
        if lock != nil { findings.append(Finding(.error, .notForThisFamily, "lock is an AVR setting; STM32 read protection is governed by allow_unlock")) }
        if clock != nil { findings.append(Finding(.error, .notForThisFamily, "clock declares AVR clock fuses; it has no meaning for an STM32")) }
        if let span = firmware.image.span {
            let base = UInt64(STM32Chip.flashBase)
            let limit = UInt64(flashSize ?? PartCatalog.stm32Chips.map(\.maximumFlash).max()!)
            if span.lowerBound < base || span.upperBound > base + limit {
                findings.append(Finding(.error, .imageBeyondFlash,
                    String(cFormat: "the image spans 0x%08llX–0x%08llX, outside the flash at 0x%08llX–0x%08llX", span.lowerBound, span.upperBound - 1, base, base + limit - 1)))
            } else if span.lowerBound != base {
                findings.append(Finding(.error, .noCodeAtBootSection,
                    String(cFormat: "the image starts at 0x%08llX, but an STM32 boots from the vector table at 0x%08llX", span.lowerBound, base)))
            }
        }
        return findings
    }
}

/// `bootmedic rules check`: everything that can be proven about a rules file without a chip.
public enum RuleChecker {
    /// Loads `path` and checks every rule: syntax, keys, parts, firmware files and pins, HEX, fit,
    /// fuse lint and placement. Problems come back in file order.
    public static func check(path: String, firmwareDirectory: String? = nil) -> (RuleSet?, [RuleProblem]) {
        check(RulesFile.load(path: path, firmwareDirectory: firmwareDirectory), path: path)
    }

    /// The same checks on rules already read (from text, say), problems reported against `path`.
    public static func check(_ loaded: RulesLoadResult, path: String) -> (RuleSet?, [RuleProblem]) {
        guard let set = loaded.ruleSet else { return (nil, loaded.problems) }
        var problems = loaded.problems
        for rule in set.rules {
            func report(_ severity: Severity, _ message: String, at position: SourcePosition?) {
                problems.append(RuleProblem(file: path, position: position, severity: severity, rule: rule.name, message: message))
            }
            guard !rule.parts.isEmpty else {
                report(.error, "the rule names no part (match.part, match.signature or match.chip_id), so its image cannot be checked", at: rule.position)
                continue
            }
            if let bootloader = rule.bootloader, bootloader.sha256 == nil {
                report(.warning, "the bootloader is not pinned: add sha256 = \"…\" so a changed file is refused", at: bootloader.position)
            }
            let firmware: PreparedFirmware
            do { firmware = try rule.loadFirmware() } catch {
                let position: SourcePosition
                switch error {
                case let .file(inner) where inner.path == rule.application?.path: position = rule.application!.position
                case let .missing(path, _, _) where path == rule.application?.path: position = rule.application!.position
                case let .digestMismatch(path, _, _) where path == rule.application?.path: position = rule.application!.position
                case .overlap: position = rule.application!.position
                default: position = rule.firmwarePosition
                }
                report(.error, error.description, at: position)
                continue
            }
            var findings: [Finding] = []
            for part in rule.parts {
                switch part {
                case let .avr(avr):
                    // Each listed part is checked; with several, each finding says whose it is.
                    let own = rule.check(firmware, on: avr, programmer: nil)
                    findings += rule.parts.count == 1 ? own : own.map { Finding($0.severity, $0.code, "\(avr.name): \($0.message)") }
                case .stm32:
                    if findings.isEmpty { findings = rule.checkSTM32(firmware, programmer: nil) }
                }
            }
            for finding in findings {
                let fuseCodes: Set<FindingCode> = [.disablesReset, .disablesSerialProgramming, .enablesDebugWIRE, .reservedClock,
                                                   .changesClockSource, .changesClockDivider, .changesClockOutput, .changesStartUpTime, .noSuchFuseByte, .unimplementedBits,
                                                   .watchdogAlwaysOn, .resetMissesBootloader, .clockNotDeclared]
                report(finding.severity, finding.message, at: fuseCodes.contains(finding.code) ? (rule.fusesPosition ?? rule.position) : rule.firmwarePosition)
            }
        }
        problems.sort { ($0.line, $0.column) < ($1.line, $1.column) }
        return (set, problems)
    }
}
