import BenchModel
import FoundationEssentials
import Parts

/// What an STM32 answers about itself, and whose silicon that makes it.
public struct STM32Target: Sendable, Hashable {
    public let identity: STM32Identity
    public let revision: UInt16
    public let chip: STM32Chip
    /// From the flash size register, in bytes.
    public let flashSize: Int
    /// The maker's silicon the identity shows (ST's own, or a clone).
    public let variant: STM32Variant

    public var chipID: UInt16 { identity.chipID }
    public var debugPortIDCode: UInt32 { identity.debugPortIDCode }
    public var family: STM32Family { .family(chip.family) }
    /// The chip's erase units: its line's, or the clone's where they differ (a GD32F103's 1 KiB pages).
    public var geometry: FlashGeometry { variant.geometry(of: chip) }

    /// The name the journal's BOOTMEDIC_PART and `probe` give: ST's line ("STM32F10x medium-density") or
    /// the clone's ("GD32F103").
    public var partName: String { variant.isGenuine ? chip.name : variant.name }

    /// "STM32F10x medium-density, 64 KiB flash in 1024-byte pages (chip id 0x410, rev 0x2003)", and for a
    /// clone what it is and what it answered.
    public var summary: String {
        let lead = variant.isGenuine ? chip.name : "\(variant.name) (\(variant.maker == "unknown" ? "an unrecognised clone" : variant.maker), as \(chip.name))"
        return "\(lead), \(flashSize / 1024) KiB flash in \(geometry.description) (chip id " + String(cFormat: "0x%03X, rev 0x%04X", chipID, revision) + ")"
            + (variant.isGenuine ? "" : "; \(identity.description)")
    }

    public init(identity: STM32Identity, revision: UInt16, chip: STM32Chip, flashSize: Int, variant: STM32Variant) {
        self.identity = identity
        self.revision = revision
        self.chip = chip
        self.flashSize = flashSize
        self.variant = variant
    }

    /// The erase units holding data of `image`'s `ranges`.
    public func eraseUnits(holding ranges: [Range<UInt64>]) -> [FlashGeometry.Unit] {
        geometry.units(holding: ranges, base: STM32Chip.flashBase, flashSize: flashSize)
    }

    /// The Cortex-M's CPUID register, and the ROM table's peripheral ID registers PIDR4 and PIDR0–3
    /// (CoreSight: the JEP106 designer sits in PIDR1[7:4], PIDR2[2:0] and the continuation count in PIDR4[3:0]).
    static let cpuIDRegister: UInt32 = 0xE000_ED00
    static let romTablePIDR4: UInt32 = 0xE00F_FFD0

    /// The JEP106 designer in PIDR4 (offset 0, continuation count), PIDR1 (offset 20) and PIDR2 (offset 24).
    static func designerCode(pidr: [UInt8]) -> UInt16 {
        let continuation = UInt16(pidr[0] & 0x0F)
        let code = UInt16(pidr[24] & 0x07) << 4 | UInt16(pidr[20] >> 4)
        return continuation << 8 | code
    }

    /// Reads DBGMCU_IDCODE where each family keeps it until one names a chip bootmedic knows, then
    /// that family's flash size register, the CPUID and the ROM table's designer, which tell a clone.
    public static func identify(through link: STLink, debugPortIDCode: UInt32) throws(STM32Error) -> STM32Target {
        func read(_ address: UInt32) throws(STM32Error) -> UInt32 {
            do { return try link.readWord(address) } catch { throw .link(error) }
        }
        var seen: UInt16 = 0
        for family in STM32Family.all {
            let idcode = try read(family.idcodeRegister)
            let chipID = UInt16(idcode & 0xFFF)
            seen = chipID
            guard let chip = family.chips.first(where: { $0.chipID == chipID }) else { continue }
            let sizeWord = try read(family.flashSizeRegister & ~3)
            let kib = Int(sizeWord >> (8 * (family.flashSizeRegister & 3)) & 0xFFFF)
            let flashSize = kib == 0 || kib == 0xFFFF ? chip.maximumFlash : kib * 1024
            let cpuID = try read(cpuIDRegister)
            // The ROM table is optional reading: a chip that faults there is recognised without it.
            let designer = (try? link.read32(romTablePIDR4, count: 32)).map(designerCode(pidr:))
            let identity = STM32Identity(debugPortIDCode: debugPortIDCode, cpuID: cpuID, designer: designer, chipID: chipID)
            return STM32Target(identity: identity, revision: UInt16(idcode >> 16), chip: chip, flashSize: flashSize,
                               variant: STM32Variant.recognise(identity, family: family.id))
        }
        guard seen != 0 else { throw .link(.noTarget(detail: "the chip id reads 0x000")) }
        throw .unknownChip(seen)
    }
}

/// A family's flash controller, driven through an ST-Link: the seam between the restore and the
/// registers of RM0008 (F1), RM0368 (F4) and their successors. Adding a family adds its data
/// (``STM32Family``) and one implementation of this protocol, registered in ``STM32FlashControllers``.
public protocol STM32FlashController: AnyObject {
    var link: STLink { get }
    /// The chip it programs, with its maker's differences.
    var target: STM32Target { get }
    /// How a write step programs ("in half-words", "in words (PSIZE x32)"), for the journal.
    var programmingDescription: String { get }
    /// Refuses, before anything is erased, an ST-Link whose firmware cannot program this family.
    func checkLink() throws(STM32Error)
    /// Whether read protection blocks debug access to flash.
    func isReadProtected() throws(STM32Error) -> Bool
    /// The option bytes as the family lays them out (readable even under read protection).
    func readOptionBytes() throws(STM32Error) -> [UInt8]
    func read(_ address: UInt32, count: Int) throws(STM32Error) -> [UInt8]
    /// Erases these units (pages or sectors); `progress` gets the number done.
    func erase(_ units: [FlashGeometry.Unit], progress: (Int) -> Void) throws(STM32Error)
    /// Programs `bytes` at `address` (erased); `progress` gets the bytes done.
    func program(_ address: UInt32, _ bytes: [UInt8], progress: (Int) -> Void) throws(STM32Error)
    /// Removes read protection the family's way, which mass-erases the chip, and resets it.
    /// - Returns: what was done, for the journal.
    func removeReadProtection() throws(STM32Error) -> String
}

/// The keys that unlock the flash controller's control register, the same on every STM32 (RM0008 §3.3.1,
/// RM0368 §3.5.1).
enum STM32FlashKeys {
    static let key1: UInt32 = 0x4567_0123, key2: UInt32 = 0xCDEF_89AB
}

extension STM32FlashController {
    /// An ST-Link call, its failure as the controller's.
    func stlink<T>(_ body: () throws(STLinkError) -> T) throws(STM32Error) -> T {
        do { return try body() } catch { throw .link(error) }
    }

    /// Writes the key sequence when `lockBit` of the `control` register is set, and checks it took.
    func unlockController(control: UInt32, keys: UInt32, lockBit: UInt32,
                          first: UInt32 = STM32FlashKeys.key1, second: UInt32 = STM32FlashKeys.key2,
                          what: String = "the flash controller") throws(STM32Error) {
        let before = try stlink { () throws(STLinkError) in try link.readWord(control) }
        guard before & lockBit != 0 else { return }
        try stlink { () throws(STLinkError) in
            try link.writeWord(keys, first)
            try link.writeWord(keys, second)
        }
        let after = try stlink { () throws(STLinkError) in try link.readWord(control) }
        if after & lockBit != 0 { throw .controller("\(what) stayed locked after the key sequence") }
    }

    /// Polls the `status` register while `busyBit` is set, bounded by twice the datasheet's worst case
    /// (plus 50 ms for the USB round trips); returns the last status read.
    func pollWhileBusy(status: UInt32, busyBit: UInt32, worstCaseMilliseconds: Int, operation: String) throws(STM32Error) -> UInt32 {
        let start = link.time.now
        var value: UInt32
        repeat {
            value = try stlink { () throws(STLinkError) in try link.readWord(status) }
            if link.time.elapsed(since: start) > UInt64(worstCaseMilliseconds) * 2_000_000 + 50_000_000 {
                throw .controller("the flash controller stayed busy while \(operation)")
            }
        } while value & busyBit != 0
        return value
    }
}

/// The flash controller of each family.
public enum STM32FlashControllers {
    public static func controller(for target: STM32Target, link: STLink) -> STM32FlashController {
        switch target.chip.family {
        case .f1: return STM32F1Flash(link: link, target: target)
        case .f4: return STM32F4Flash(link: link, target: target)
        }
    }
}

/// Why STM32 flash programming failed.
public enum STM32Error: Error, Equatable, Sendable, CustomStringConvertible {
    case link(STLinkError)
    case unknownChip(UInt16)
    case controller(String)

    public var description: String {
        switch self {
        case let .link(error): return error.description
        case let .unknownChip(id): return String(cFormat: "chip id 0x%03X is no STM32 line bootmedic knows", id)
        case let .controller(text): return text
        }
    }
}
