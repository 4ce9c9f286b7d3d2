@_exported import DeviceCatalog
import FirmwareImage
import Parts

/// What a rule matches on. Every key given must match; none given matches everything.
public struct RuleMatch: Hashable, Sendable {
    /// The parts the rule is for, any of which matches (`part = "gd32f103"` or a list); empty for any part.
    public var parts: [Part]
    public var signature: Signature?
    public var chipID: UInt16?
    public var programmer: ProgrammerKind?
    /// The USB ids of the board in its bootloader (`usb = "1B4F:9205"`).
    public var usb: USBID?
    /// The programmer's USB serial number.
    public var serial: String?
    /// The bench port: udev's ID_PATH of the programmer.
    public var port: String?

    public init(parts: [Part] = [], signature: Signature? = nil, chipID: UInt16? = nil, programmer: ProgrammerKind? = nil,
                serial: String? = nil, port: String? = nil) {
        self.parts = parts
        self.signature = signature
        self.chipID = chipID
        self.programmer = programmer
        self.serial = serial
        self.port = port
    }

    /// True when every key this match gives is also given, with the same value, by `other`:
    /// then `other` can only match targets this one matches too.
    func covers(_ other: RuleMatch) -> Bool {
        func covers<T: Equatable>(_ a: T?, _ b: T?) -> Bool { a == nil || a == b }
        return (parts.isEmpty || Set(other.parts).isSubset(of: parts) && !other.parts.isEmpty) && covers(signature, other.signature) && covers(chipID, other.chipID)
            && covers(programmer, other.programmer) && covers(usb, other.usb) && covers(serial, other.serial) && covers(port, other.port)
    }
}

/// What is known about a target and its programmer when a rule is chosen.
public struct TargetContext: Hashable, Sendable {
    /// The AVR part the signature identified, if it is an AVR.
    public var avrPart: AVRPart?
    public var signature: Signature?
    /// The STM32 DEV_ID, if it is an STM32.
    public var chipID: UInt16?
    /// Whose silicon the STM32 is (``STM32Variant/id``).
    public var stm32Variant: String?
    /// The programmer it sits behind; nil when the board is programmed through its own bootloader.
    public var programmer: ProgrammerKind?
    /// The bootloader it waits in, and the USB ids it enumerates with there.
    public var bootloader: BootloaderKind?
    public var usb: USBID?
    public var serial: String?
    public var port: String?

    public init(avrPart: AVRPart? = nil, signature: Signature? = nil, chipID: UInt16? = nil, stm32Variant: String? = nil,
                programmer: ProgrammerKind? = nil, bootloader: BootloaderKind? = nil, usb: USBID? = nil, serial: String? = nil, port: String? = nil) {
        self.avrPart = avrPart
        self.signature = signature
        self.chipID = chipID
        self.stm32Variant = stm32Variant
        self.programmer = programmer
        self.bootloader = bootloader
        self.usb = usb
        self.serial = serial
        self.port = port
    }
}

extension Part {
    /// Whether the target in `context` is this part. Parts that share a signature (ATmega32 and 32A)
    /// cannot be told apart over ISP: either name matches. An STM32 line names chip ids and a maker.
    public func covers(_ context: TargetContext) -> Bool {
        switch self {
        case let .avr(want):
            return context.avrPart?.signature == want.signature
        case let .stm32(line):
            guard let chipID = context.chipID, let variant = context.stm32Variant else { return false }
            return line.covers(chipID: chipID, variant: variant)
        }
    }
}

extension RuleMatch {
    /// True when the target in `context` satisfies every key of this match.
    public func matches(_ context: TargetContext) -> Bool {
        if !parts.isEmpty, !parts.contains(where: { $0.covers(context) }) { return false }
        if let signature, signature != context.signature { return false }
        if let chipID, chipID != context.chipID { return false }
        if let programmer, programmer != context.programmer { return false }
        if let usb, usb != context.usb { return false }
        if let serial, serial != context.serial { return false }
        if let port, port != context.port { return false }
        return true
    }
}

/// A firmware file a rule names, with its pinned digest.
public struct FirmwareReference: Hashable, Sendable {
    /// The path as the rule writes it.
    public let declaredPath: String
    /// The path resolved against the firmware directory.
    public let path: String
    public let sha256: SHA256Digest?
    public let position: SourcePosition
}

/// A rule's `eeprom` key: the EEPROM written after an application is flashed through the bootloader.
public enum EEPROMAction: Hashable, Sendable {
    /// `eeprom = "erase"`: every byte 0xFF.
    case erase
    /// `eeprom = "settings.eep"`: that image (Intel HEX from address 0, or a raw binary).
    case write(FirmwareReference)
}

/// What a rule lets bootmedic do beyond the safe defaults.
public struct RulePolicies: Hashable, Sendable {
    /// Save flash, EEPROM, fuses and lock before erasing.
    public var backup = true
    /// Write the saved EEPROM back after the chip erase.
    public var restoreEEPROM = true
    /// Accept fuses the safety lint refuses.
    public var allowUnsafeFuses = false
    /// STM32: remove read protection, which mass-erases the chip.
    public var allowUnlock = false
    /// AVR: when the rule's final low fuse clears CKDIV8 on the oscillator the chip already runs on, clear
    /// that one bit first (before the backup) and program the rest at the faster SCK.
    public var raiseClock = true

    public init() {}
}

/// One `[[rule]]`: which targets it is for and what they get.
public struct Rule: Sendable {
    public let name: String
    /// Where the rule's `[[rule]]` header stands.
    public let position: SourcePosition
    public let match: RuleMatch
    /// What an ISP or SWD restore writes; nil for a rule that only flashes an application through the
    /// board's own bootloader.
    public let bootloader: FirmwareReference?
    public let application: FirmwareReference?
    public let fuses: FuseSet?
    public let fusesPosition: SourcePosition?
    public let lock: UInt8?
    public let clock: BoardClock?
    public let expectUSB: USBID?
    public let policies: RulePolicies
    public let summary: String?
    /// What a flash through the board's bootloader does to the EEPROM: nothing (nil), write a file, or
    /// erase it (QMK Toolbox's "Clear EEPROM").
    public internal(set) var eeprom: EEPROMAction? = nil
    /// Where a raw-binary application is placed (`application_address`; an STM32 sketch above the
    /// STM32duino bootloader's 8 KiB: 0x08002000); by default the flash base.
    public internal(set) var applicationAddress: UInt32? = nil
    /// `use_1200bps_touch`: a board matching `match.usb` while it runs a sketch is sent to its Caterina
    /// bootloader (its port opened at 1200 baud and closed) and the application flashed through that.
    public internal(set) var usesTouch = false

    /// Where the rule names what it writes: its bootloader, else its application.
    public var firmwarePosition: SourcePosition { (bootloader ?? application)?.position ?? position }

    /// The parts this rule is for, from `match.part` or else the signature or chip id; empty when it names none.
    public var parts: [Part] {
        if !match.parts.isEmpty { return match.parts }
        if let signature = match.signature, let avr = PartCatalog.avrParts(withSignature: signature).first { return [.avr(avr)] }
        if let id = match.chipID, let chip = PartCatalog.stm32Chip(id: id), let line = STM32Line.named(chip.family.rawValue) { return [.stm32(line)] }
        return []
    }

}

/// A parsed rules file.
public struct RuleSet: Sendable {
    /// The file it came from.
    public let path: String
    /// Where backups go (`[defaults] backup_dir`).
    public let backupDirectory: String
    /// Where relative firmware paths are resolved; empty for the working directory.
    public let firmwareDirectory: String
    public let rules: [Rule]
    /// `[[programmer]]` entries: USB devices the workshop adds to the device catalog, checked first.
    public var programmers: [DeviceEntry] = []
    /// `[defaults] bench`: this bench's name in a workshop, carried by every journal entry as BOOTMEDIC_BENCH.
    public var bench: String?

    /// The device catalog this rules file makes: the built-in table with its `[[programmer]]` entries in front.
    public var deviceCatalog: DeviceCatalog { .standard(with: programmers) }

    /// The first rule that matches `context`, as udev picks the first matching rule.
    /// The first rule that fits and has something for this job: a bootloader to write over ISP or SWD,
    /// or, for a board in its bootloader, an application to flash through it.
    public func firstMatch(for context: TargetContext) -> Rule? {
        rules.first { $0.match.matches(context) && (context.bootloader == nil ? $0.bootloader != nil : $0.application != nil) }
    }

    /// The rule called `name`.
    public func rule(named name: String) -> Rule? { rules.first { $0.name == name } }

    /// The first rule that sends a board running a sketch, seen with these ids (and serial number and
    /// port) on its serial port, to its bootloader with the 1200-baud touch.
    public func touchRule(for usb: USBID, serial: String?, port: String?) -> Rule? {
        rules.first { $0.usesTouch && $0.match.usb == usb && ($0.match.serial == nil || $0.match.serial == serial) && ($0.match.port == nil || $0.match.port == port) }
    }
}

extension Rule {
    /// This rule with `path` as its application, unpinned (the file was named on the command line).
    public func flashing(_ path: String) -> Rule {
        Rule(name: name, position: position, match: match, bootloader: bootloader,
             application: FirmwareReference(declaredPath: path, path: path, sha256: nil, position: application?.position ?? position),
             fuses: fuses, fusesPosition: fusesPosition, lock: lock, clock: clock, expectUSB: expectUSB, policies: policies, summary: summary,
             eeprom: eeprom, applicationAddress: applicationAddress, usesTouch: usesTouch)
    }
}

extension RuleSet {
    /// These rules with `path` as every rule's application: what `bootmedic flash --rules R FILE` does
    /// (the rules choose the board's rule and policies, the file is what is flashed).
    public func flashing(_ path: String) -> RuleSet {
        var set = RuleSet(path: self.path, backupDirectory: backupDirectory, firmwareDirectory: firmwareDirectory, rules: rules.map { $0.flashing(path) })
        set.programmers = programmers
        set.bench = bench
        return set
    }

    /// One rule that flashes `path` through whatever bootloader a board waits in, on the part the
    /// bootloader reports: `bootmedic flash FILE` with no rules file, as `qmk flash` does; `backup`
    /// false for a bootloader that reads nothing back (HalfKay).
    public static func flashing(_ path: String, backupDirectory: String, backup: Bool = true) -> RuleSet {
        var policies = RulePolicies()
        policies.backup = backup
        policies.restoreEEPROM = false
        let rule = Rule(name: "flash " + (path.split(separator: "/").last.map(String.init) ?? path), position: SourcePosition(line: 1, column: 1),
                        match: RuleMatch(), bootloader: nil,
                        application: FirmwareReference(declaredPath: path, path: path, sha256: nil, position: SourcePosition(line: 1, column: 1)),
                        fuses: nil, fusesPosition: nil, lock: nil, clock: nil, expectUSB: nil, policies: policies, summary: nil)
        return RuleSet(path: "(the command line)", backupDirectory: backupDirectory, firmwareDirectory: "", rules: [rule])
    }
}
