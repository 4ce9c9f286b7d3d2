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

/// How a family encodes its clock selection in CKSEL3..0.
public enum ClockFamily: Sendable, Hashable {
    /// ATmega16U4/32U4, AT90USB646/647/1286/1287.
    case usbMega
    /// ATmega48/88/168/328 family.
    case mega328
    /// ATmega16/32(A): no CKDIV8, CKOPT in the high byte.
    case mega32
}

/// A lock byte layout: LB1..2 guard external access, BLB0x/BLB1x the application and boot sections.
public struct LockLayout: Hashable, Sendable {
    public let implementedMask: UInt8
    public let factoryDefault: UInt8
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
    /// The fuse bytes the part has, low first.
    public let fuseBytes: [FuseByteLayout]
    public let lock: LockLayout
    /// The boot section size in bytes when BOOTSZ1..0 = 11 (the smallest); each step down doubles it.
    public let smallestBootSection: Int
    public let clockFamily: ClockFamily
    public let times: ProgrammingTimes

    public var description: String { name }

    /// The layout of `byte`, or nil if the part has no such fuse byte.
    public func layout(of byte: FuseByte) -> FuseByteLayout? { fuseBytes.first { $0.byte == byte } }

    /// The named field, wherever it lives.
    public func field(_ name: String) -> FuseField? {
        for layout in fuseBytes { if let f = layout.fields.first(where: { $0.name == name }) { return f } }
        return nil
    }

    /// The fuse values the part leaves the factory with.
    public var factoryFuses: FuseSet {
        FuseSet(low: layout(of: .low)?.factoryDefault, high: layout(of: .high)?.factoryDefault,
                extended: layout(of: .extended)?.factoryDefault)
    }

    /// True for parts whose flash needs the "load extended address" instruction (more than 128 KiB)
    /// or, on programmers with 16-bit byte addressing, more than 64 KiB.
    public var flashExceeds64KiB: Bool { flash.size > 0x10000 }

    /// Boot section for a BOOTSZ value (0...3, as read from the fuse: 3 is the smallest).
    public func bootSection(bootsz: UInt8) -> BootSection {
        let size = smallestBootSection << (3 - Int(bootsz & 3))
        return BootSection(bootsz: bootsz & 3, start: UInt32(flash.size - size), size: size)
    }

    /// All four boot section choices, smallest first.
    public var bootSections: [BootSection] { (0...3).reversed().map { bootSection(bootsz: UInt8($0)) } }
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
