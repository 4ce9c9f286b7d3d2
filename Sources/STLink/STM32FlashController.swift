import BenchModel
import FoundationEssentials
import Parts

/// What an STM32 answers about itself.
public struct STM32Target: Sendable, Hashable {
    /// The SW-DP IDCODE.
    public let debugPortIDCode: UInt32
    /// DEV_ID of DBGMCU_IDCODE.
    public let chipID: UInt16
    public let revision: UInt16
    public let chip: STM32Chip
    /// From the flash size register, in bytes.
    public let flashSize: Int

    public var family: STM32Family { .family(chip.family) }

    /// "STM32F10x medium-density, 64 KiB flash in 1024-byte pages (chip id 0x410, rev 0x2003)"
    public var summary: String {
        "\(chip.name), \(flashSize / 1024) KiB flash in \(chip.geometry.description) (chip id " + String(cFormat: "0x%03X, rev 0x%04X", chipID, revision) + ")" + (cloneName.map { "; \($0)" } ?? "")
    }

    /// Set when the debug port is not one ST's silicon of this family has: the chip is a clone.
    public var cloneName: String? {
        guard !family.genuineDebugPortIDCodes.contains(debugPortIDCode) else { return nil }
        let found = String(cFormat: "0x%08X", debugPortIDCode)
        let genuine = family.genuineDebugPortIDCodes.sorted().map { String(cFormat: "0x%08X", $0) }.joined(separator: " or ")
        if family.id == .f1, debugPortIDCode == 0x2BA0_1477 {
            return "a clone (CKS32F103, APM32F103 or similar: a Cortex-M4-class SW-DP IDCODE \(found) under an F1 chip id, where ST's answers \(genuine))"
        }
        return "a clone or an unknown core (SW-DP IDCODE \(found), where ST's \(family.name) answers \(genuine))"
    }

    /// The erase units holding data of `image`'s `ranges`.
    public func eraseUnits(holding ranges: [Range<UInt64>]) -> [FlashGeometry.Unit] {
        chip.geometry.units(holding: ranges, base: STM32Chip.flashBase, flashSize: flashSize)
    }

    /// Reads DBGMCU_IDCODE where each family keeps it until one names a chip bootmedic knows, then
    /// that family's flash size register.
    public static func identify(through link: STLink, debugPortIDCode: UInt32) throws(STM32Error) -> STM32Target {
        var seen: UInt16 = 0
        for family in STM32Family.all {
            let idcode: UInt32
            do { idcode = try link.readWord(family.idcodeRegister) } catch { throw .link(error) }
            let chipID = UInt16(idcode & 0xFFF)
            seen = chipID
            guard let chip = family.chips.first(where: { $0.chipID == chipID }) else { continue }
            let sizeWord: UInt32
            do { sizeWord = try link.readWord(family.flashSizeRegister) } catch { throw .link(error) }
            let kib = Int(sizeWord & 0xFFFF)
            let flashSize = kib == 0 || kib == 0xFFFF ? chip.maximumFlash : kib * 1024
            return STM32Target(debugPortIDCode: debugPortIDCode, chipID: chipID, revision: UInt16(idcode >> 16), chip: chip, flashSize: flashSize)
        }
        guard seen != 0 else { throw .link(.noTarget(detail: "the chip id reads 0x000")) }
        throw .unknownChip(seen)
    }
}

/// A family's flash controller, driven through an ST-Link: the seam between the restore and the
/// registers of RM0008 (F1) and its successors. Adding a family adds its data (``STM32Family``) and one
/// implementation of this protocol, registered in ``STM32FlashControllers``.
public protocol STM32FlashController: AnyObject {
    var link: STLink { get }
    var family: STM32Family { get }
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
    func removeReadProtection() throws(STM32Error)
}

/// The flash controller of each family.
public enum STM32FlashControllers {
    public static func controller(for family: STM32Family.ID, link: STLink) -> STM32FlashController {
        switch family {
        case .f1: return STM32F1Flash(link: link)
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
