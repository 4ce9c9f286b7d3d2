import Parts

/// Arduino's Caterina bootloader running on a simulated ATmega32U4 (or any AVR with a boot section), as
/// the host sees it over its CDC ACM port: AVR109's one-letter commands (software id "CATERIN", version
/// 1.0, 128-byte blocks, the signature last byte first, fuses and lock), block writes that erase and
/// program a page with SPM each (so the lock bits' boot-section protection applies: Arduino's lock 0x2F
/// keeps the bootloader from overwriting itself), 'e' erasing the application section, and 'E' leaving
/// for the application, which takes the USB device away (the line hangs up).
public final class SimulatedCaterina: SerialProgrammerSimulator {
    public let chip: SimulatedAVR
    public private(set) var hasHungUp = false

    private var input: [UInt8] = []
    /// The current byte address ('A' takes a word address).
    private var address = 0

    public init(chip: SimulatedAVR) { self.chip = chip }

    public func receive(_ bytes: [UInt8]) -> [UInt8] {
        input += bytes
        var out: [UInt8] = []
        while !hasHungUp, let (consumed, reply) = command() {
            input.removeFirst(consumed)
            out += reply
        }
        return out
    }

    private static let cr: [UInt8] = [0x0D], unknown: [UInt8] = [UInt8(ascii: "?")]

    /// One complete command from the input and its answer, or nil if more bytes are needed.
    private func command() -> (Int, [UInt8])? {
        guard let c = input.first else { return nil }
        func need(_ n: Int) -> Bool { input.count >= n }
        let signature = chip.part.signature
        switch Character(UnicodeScalar(c)) {
        case "\u{1B}": return (1, [])                                               // sync: no answer
        case "S": return (1, Array("CATERIN".utf8))
        case "V": return (1, Array("10".utf8))
        case "p": return (1, [UInt8(ascii: "S")])
        case "a": return (1, [UInt8(ascii: "Y")])
        case "b": return (1, [UInt8(ascii: "Y"), UInt8(chip.part.flash.pageSize >> 8), UInt8(chip.part.flash.pageSize & 0xFF)])
        case "t": return (1, [0x44, 0x00])
        case "P", "L": return (1, Self.cr)
        case "T", "x", "y":
            guard need(2) else { return nil }
            return (2, Self.cr)
        case "s": return (1, [signature.bytes[2], signature.bytes[1], signature.bytes[0]])
        case "F": return (1, [chip.fuses.low ?? 0xFF])
        case "N": return (1, [chip.fuses.high ?? 0xFF])
        case "Q": return (1, [chip.fuses.extended ?? 0xFF])
        case "r": return (1, [chip.lock])
        case "A":
            guard need(3) else { return nil }
            address = (Int(input[1]) << 8 | Int(input[2])) << 1
            return (3, Self.cr)
        case "e":
            chip.selfEraseApplication()
            return (1, Self.cr)
        case "g":
            guard need(4) else { return nil }
            let count = Int(input[1]) << 8 | Int(input[2])
            return (4, read(count, memory: input[3]))
        case "B":
            guard need(4) else { return nil }
            let count = Int(input[1]) << 8 | Int(input[2])
            guard need(4 + count) else { return nil }
            return (4 + count, write(Array(input[4..<4 + count]), memory: input[3]))
        case "E":
            hasHungUp = true
            return (1, Self.cr)
        default:
            return (1, Self.unknown)
        }
    }

    private func read(_ count: Int, memory: UInt8) -> [UInt8] {
        switch memory {
        case UInt8(ascii: "F"):
            let out = (0..<count).map { chip.flash[(address + $0) % chip.part.flash.size] }
            address += count
            return out
        case UInt8(ascii: "E"):
            // EEPROM addresses come as words too; the bootloader halves them back.
            let start = address >> 1
            let out = (0..<count).map { chip.eeprom[(start + $0) % max(1, chip.part.eeprom.size)] }
            address += 2 * count
            return out
        default:
            return Self.unknown
        }
    }

    /// A flash block is written page by page from the current address (each page erased first); an
    /// EEPROM block byte by byte from the halved address.
    private func write(_ data: [UInt8], memory: UInt8) -> [UInt8] {
        if memory == UInt8(ascii: "E") {
            chip.selfWriteEEPROM(at: address >> 1, data)
            address += 2 * data.count
            return Self.cr
        }
        guard memory == UInt8(ascii: "F") else { return Self.unknown }
        let page = chip.part.flash.pageSize
        for offset in stride(from: 0, to: data.count, by: page) {
            chip.selfProgramPage(at: (address + offset) / page * page, Array(data[offset..<min(offset + page, data.count)]))
        }
        address += data.count
        return Self.cr
    }
}
