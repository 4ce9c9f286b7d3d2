/// Size and page size of one memory of a part.
public struct MemoryGeometry: Hashable, Sendable, Codable {
    public let size: Int
    public let pageSize: Int
    public var pageCount: Int { size / pageSize }

    public init(size: Int, pageSize: Int) {
        self.size = size
        self.pageSize = pageSize
    }
}

/// Worst-case self-timed waits of the serial-programming instructions, in microseconds
/// (the datasheets' "Typical Wait Delay Before Writing the Next Flash or EEPROM Location" table).
public struct ProgrammingTimes: Hashable, Sendable {
    /// tWD_FLASH: after a "write program memory page".
    public let flashPageWrite: Int
    /// tWD_EEPROM: after an EEPROM byte or page write.
    public let eepromWrite: Int
    /// tWD_ERASE: after "chip erase".
    public let chipErase: Int
    /// tWD_FUSE: after a fuse or lock write.
    public let fuseWrite: Int
}

/// How a family encodes its clock selection in its CKSEL bits (the datasheets' "Device Clocking Options
/// Select" tables).
public enum ClockFamily: Sendable, Hashable {
    /// ATmega16U4/32U4, AT90USB646/647/1286/1287.
    case usbMega
    /// ATmega8U2/16U2/32U2, AT90USB82/162: crystal, internal RC or an external clock only.
    case usbMegaU2
    /// ATmega48/88/168/328 families, ATmega164/324/644/1284, ATmega640/1280/1281/2560/2561.
    case mega328
    /// ATmega8/16/32(A): no CKDIV8, CKOPT in the high byte, the RC oscillator at 1, 2, 4 or 8 MHz.
    case mega32
    /// ATtiny13(A): two CKSEL bits, the RC oscillator at 9.6 or 4.8 MHz.
    case tiny13
    /// ATtiny25/45/85: the 16 MHz PLL clock and the ATtiny15 compatibility mode.
    case tiny85
    /// ATtiny24/44/84(A).
    case tiny84
    /// ATtiny2313(A)/4313: the RC oscillator at 4 or 8 MHz.
    case tiny2313
}

/// The serial-programming instruction set a part speaks.
public enum ISPInstructionSet: Hashable, Sendable {
    /// The ATmega/ATtiny set: paged flash, low/high/extended fuse and lock instructions. What bootmedic
    /// restores.
    case paged
    /// The AT90S-era set (AT90S, ATtiny12/15, ATmega103/161): flash written byte by byte with data polling,
    /// a single fuse byte with its own instructions (`fuseMask` its implemented bits, nil if ISP cannot
    /// write it). Listed, not restored.
    case legacy(fuseMask: UInt8?)
}

/// A lock byte layout: LB1..2 guard external access, BLB0x/BLB1x the application and boot sections.
public struct LockLayout: Hashable, Sendable {
    public let implementedMask: UInt8
    /// Unlocked: every implemented bit unprogrammed.
    public var factoryDefault: UInt8 { implementedMask }
}

/// An AVR microcontroller that bootmedic knows how to restore.
public struct AVRPart: Hashable, Sendable, CustomStringConvertible {
    /// Datasheet name, e.g. "ATmega32U4".
    public let name: String
    /// The name rules and the command line use, e.g. "atmega32u4" (avrdude's `-p` long form).
    public let id: String
    /// avrdude's short id, e.g. "m32u4"; also accepted as a name.
    public let avrdudeID: String
    public let signature: Signature
    public let flash: MemoryGeometry
    public let eeprom: MemoryGeometry
    /// Whether EEPROM has a page buffer (Load/Write EEPROM Memory Page); without one, bytes are written
    /// one at a time.
    public let eepromHasPageBuffer: Bool
    /// The fuse bytes the part has, low first.
    public let fuseBytes: [FuseByteLayout]
    public let lock: LockLayout
    /// The boot section size in bytes when BOOTSZ1..0 = 11 (the smallest); each step down doubles it.
    /// 0 for parts without a boot section (the ATtinys, the ATmega48), whose bootloaders sit at an address
    /// of their own and are reached through the reset vector or erased flash.
    public let smallestBootSection: Int
    /// How many boot section sizes BOOTSZ selects (4), or 1 for a fixed one, 0 for none.
    public let bootSectionCount: Int
    /// How CKSEL encodes the clock; nil for a part without named fuse semantics.
    public let clockFamily: ClockFamily?
    public let times: ProgrammingTimes
    public let instructionSet: ISPInstructionSet

    public var description: String { name }

    /// True when bootmedic knows what the part's fuse bits mean (from its datasheet), so it can decode
    /// them, lint a rule's fuses and check where a bootloader goes. Without it a rule that writes fuses
    /// needs `allow_unsafe_fuses = true`.
    public var hasNamedFuses: Bool { clockFamily != nil }

    /// Whether the part has a boot section that BOOTRST can point reset at.
    public var hasBootSection: Bool { bootSectionCount > 0 }

    /// Why bootmedic cannot restore this part over ISP, or nil when it can.
    public var restoreRefusal: String? {
        guard case .legacy = instructionSet else { return nil }
        return "\(name) uses the AT90S-era serial programming instructions (flash written byte by byte, a single fuse byte): bootmedic lists it but restores only parts with paged flash"
    }

    /// The layout of `byte`, or nil if the part has no such fuse byte.
    public func layout(of byte: FuseByte) -> FuseByteLayout? { fuseBytes.first { $0.byte == byte } }

    /// The named field, wherever it lives.
    public func field(_ name: String) -> FuseField? {
        for layout in fuseBytes { if let f = layout.fields.first(where: { $0.name == name }) { return f } }
        return nil
    }

    /// The fuse values the part leaves the factory with; bytes are nil where the part has no named semantics.
    public var factoryFuses: FuseSet {
        FuseSet(low: layout(of: .low)?.factoryDefault, high: layout(of: .high)?.factoryDefault,
                extended: layout(of: .extended)?.factoryDefault)
    }

    /// True for parts whose flash needs the Load Extended Address instruction (more than 128 KiB: the word
    /// address no longer fits the instructions' 16 bits).
    public var needsExtendedAddress: Bool { flash.size > 0x20000 }

    /// Boot section for a BOOTSZ value (0...3, as read from the fuse: 3 is the smallest). Only for parts
    /// with four boot section sizes.
    public func bootSection(bootsz: UInt8) -> BootSection {
        let size = smallestBootSection << (3 - Int(bootsz & 3))
        return BootSection(bootsz: bootsz & 3, start: UInt32(flash.size - size), size: size)
    }

    /// The boot section BOOTSZ selects in `fuses`, nil when the part has none, BOOTSZ is not named, or
    /// the byte holding it is not given.
    public func bootSection(in fuses: FuseSet) -> BootSection? {
        guard bootSectionCount == 4, let bootsz = field("BOOTSZ"), let value = fuses[bootsz.byte] else { return nil }
        return bootSection(bootsz: bootsz.value(in: value))
    }

    /// Every boot section choice, smallest first (none for parts without a boot section).
    public var bootSections: [BootSection] {
        switch bootSectionCount {
        case 4: return (0...3).reversed().map { bootSection(bootsz: UInt8($0)) }
        case 1: return [BootSection(bootsz: 3, start: UInt32(flash.size - smallestBootSection), size: smallestBootSection)]
        default: return []
        }
    }
}

/// The boot loader section that the BOOTSZ fuses select.
public struct BootSection: Hashable, Sendable, CustomStringConvertible {
    /// The BOOTSZ1..0 value (0...3).
    public let bootsz: UInt8
    /// Byte address where the section, and the boot reset vector, start.
    public let start: UInt32
    /// Size in bytes.
    public let size: Int

    public var words: Int { size / 2 }
    public var range: Range<UInt64> { UInt64(start)..<UInt64(start) + UInt64(size) }

    /// "4096 bytes (2048 words) at 0x7000 (BOOTSZ=00)"
    public var description: String {
        let bits = String(bootsz, radix: 2)
        return "\(size) bytes (\(words) words) at \(formatHex(start, width: 4)) (BOOTSZ=\(bits.count == 1 ? "0" + bits : bits))"
    }
}
