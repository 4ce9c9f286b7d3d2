import FirmwareImage
import Foundation

/// A boards.txt in a fresh folder with a `bootloaders/` beside it, holding made-up images (no third-party
/// firmware): a 512-byte "optiboot" at 0x7E00 and a 2 KiB image at 0x7800.
public struct BoardsFolder {
    public let dir: URL
    public var boardsTxt: String { dir.appendingPathComponent("boards.txt").path }

    public init(_ text: String) throws {
        dir = try Fixtures.temporaryDirectory()
        let boot = dir.appendingPathComponent("bootloaders/optiboot")
        try FileManager.default.createDirectory(at: boot, withIntermediateDirectories: true)
        try IntelHex.format(MemoryImage(bytes: garbage(512), at: 0x7E00))
            .write(to: boot.appendingPathComponent("optiboot_atmega328p.hex"), atomically: true, encoding: .utf8)
        try IntelHex.format(MemoryImage(bytes: garbage(2048, seed: 3), at: 0x7800))
            .write(to: boot.appendingPathComponent("big.hex"), atomically: true, encoding: .utf8)
        try text.write(toFile: boardsTxt, atomically: true, encoding: .utf8)
    }

    public func remove() { try? FileManager.default.removeItem(at: dir) }
}

/// Boards of every kind an import meets: plain, with a processor menu, a missing file, another menu,
/// a misplaced image, an unknown placeholder.
public let sampleBoards = """
# a comment, and a menu's title
menu.cpu=Processor

uno.name=Arduino Uno
uno.vid.0=0x2341
uno.bootloader.low_fuses=0xFF
uno.bootloader.high_fuses=0xDE
uno.bootloader.extended_fuses=0xFD
uno.bootloader.lock_bits=0x0F
uno.bootloader.file=optiboot/optiboot_{build.mcu}.hex
uno.build.mcu=atmega328p

pro.name=Pro Mini
pro.bootloader.lock_bits=0x0F
pro.menu.cpu.16MHz=ATmega328P (5V, 16 MHz)
pro.menu.cpu.16MHz.bootloader.low_fuses=0xFF
pro.menu.cpu.16MHz.bootloader.high_fuses=0xDA
pro.menu.cpu.16MHz.bootloader.extended_fuses=0xFD
pro.menu.cpu.16MHz.bootloader.file=optiboot/big.hex
pro.menu.cpu.16MHz.build.mcu=atmega328p
pro.menu.cpu.8MHz168=ATmega168 (3.3V, 8 MHz)
pro.menu.cpu.8MHz168.bootloader.file=atmega/ATmegaBOOT_168_pro_8MHz.hex
pro.menu.cpu.8MHz168.build.mcu=atmega168

leo.name=Leonardo
leo.bootloader.file=caterina/Caterina-Leonardo.hex
leo.build.mcu=atmega32u4

mini.name=MiniCore-style board
mini.menu.clock.16MHz=16 MHz external
mini.menu.clock.16MHz.bootloader.low_fuses=0xF7
mini.bootloader.file=optiboot/big.hex
mini.build.mcu=atmega328p

wrong.name=Bootloader in the wrong place
wrong.bootloader.low_fuses=0xFF
wrong.bootloader.high_fuses=0xDE
wrong.bootloader.file=optiboot/big.hex
wrong.build.mcu=atmega328p

odd.name=Odd placeholder
odd.bootloader.file=optiboot/{bootloader.variant}.hex
odd.build.mcu=atmega328p
"""

