import Parts

/// A four-byte AVR serial programming instruction (datasheet "Serial Programming Instruction Set").
/// The target echoes byte 1 while byte 2 is shifted in and byte 2 while byte 3 is, and answers data in byte 4.
public struct ISPInstruction: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8) { bytes = [b0, b1, b2, b3] }

    public var description: String { bytes.map { byte in
        let s = String(byte, radix: 16, uppercase: true)
        return s.count == 1 ? "0" + s : s
    }.joined(separator: " ") }

    /// Programming Enable; the target echoes 0x53 in the third byte.
    public static let programmingEnable = ISPInstruction(0xAC, 0x53, 0x00, 0x00)
    /// Chip Erase: flash, EEPROM (unless EESAVE) and lock bits.
    public static let chipErase = ISPInstruction(0xAC, 0x80, 0x00, 0x00)
    /// Poll RDY/BSY: bit 0 of the answer is 1 while a write is in progress.
    public static let pollBusy = ISPInstruction(0xF0, 0x00, 0x00, 0x00)

    /// Read Signature Byte `index` (0...2).
    public static func readSignature(_ index: UInt8) -> ISPInstruction { ISPInstruction(0x30, 0x00, index & 3, 0x00) }

    /// Load Extended Address byte (bits 23:16 of the word address) for parts over 128 KiB.
    public static func loadExtendedAddress(_ byte: UInt8) -> ISPInstruction { ISPInstruction(0x4D, 0x00, byte, 0x00) }

    /// Read Program Memory at a byte address (low or high byte of the word).
    public static func readFlash(byteAddress: UInt32) -> ISPInstruction {
        let word = byteAddress >> 1
        return ISPInstruction(byteAddress & 1 == 0 ? 0x20 : 0x28, UInt8(word >> 8 & 0xFF), UInt8(word & 0xFF), 0x00)
    }

    /// Load Program Memory Page at a byte address (the low bits of the word address pick the buffer slot).
    public static func loadFlashPage(byteAddress: UInt32, value: UInt8) -> ISPInstruction {
        let word = byteAddress >> 1
        return ISPInstruction(byteAddress & 1 == 0 ? 0x40 : 0x48, UInt8(word >> 8 & 0xFF), UInt8(word & 0xFF), value)
    }

    /// Write Program Memory Page holding the byte address.
    public static func writeFlashPage(byteAddress: UInt32) -> ISPInstruction {
        let word = byteAddress >> 1
        return ISPInstruction(0x4C, UInt8(word >> 8 & 0xFF), UInt8(word & 0xFF), 0x00)
    }

    /// Read EEPROM Memory.
    public static func readEEPROM(_ address: UInt16) -> ISPInstruction { ISPInstruction(0xA0, UInt8(address >> 8), UInt8(address & 0xFF), 0x00) }
    /// Write EEPROM Memory (one byte, self-timed tWD_EEPROM).
    public static func writeEEPROM(_ address: UInt16, _ value: UInt8) -> ISPInstruction { ISPInstruction(0xC0, UInt8(address >> 8), UInt8(address & 0xFF), value) }
    /// Load EEPROM Memory Page buffer slot.
    public static func loadEEPROMPage(_ address: UInt16, _ value: UInt8) -> ISPInstruction { ISPInstruction(0xC1, 0x00, UInt8(address & 0xFF), value) }
    /// Write EEPROM Memory Page holding the address.
    public static func writeEEPROMPage(_ address: UInt16) -> ISPInstruction { ISPInstruction(0xC2, UInt8(address >> 8), UInt8(address & 0xFF), 0x00) }

    /// Read a fuse byte.
    public static func readFuse(_ byte: FuseByte) -> ISPInstruction {
        switch byte {
        case .low: return ISPInstruction(0x50, 0x00, 0x00, 0x00)
        case .high: return ISPInstruction(0x58, 0x08, 0x00, 0x00)
        case .extended: return ISPInstruction(0x50, 0x08, 0x00, 0x00)
        }
    }

    /// Write a fuse byte.
    public static func writeFuse(_ byte: FuseByte, _ value: UInt8) -> ISPInstruction {
        switch byte {
        case .low: return ISPInstruction(0xAC, 0xA0, 0x00, value)
        case .high: return ISPInstruction(0xAC, 0xA8, 0x00, value)
        case .extended: return ISPInstruction(0xAC, 0xA4, 0x00, value)
        }
    }

    public static let readLock = ISPInstruction(0x58, 0x00, 0x00, 0x00)
    public static func writeLock(_ value: UInt8) -> ISPInstruction { ISPInstruction(0xAC, 0xE0, 0x00, value | 0xC0) }
    public static let readCalibration = ISPInstruction(0x38, 0x00, 0x00, 0x00)
}

