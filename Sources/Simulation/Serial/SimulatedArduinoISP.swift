/// The ArduinoISP sketch (and QMK's ISP firmware for Pro Micro and Teensy 2.0, which is built from it)
/// answering STK500v1 over a serial line: sync, parameters, device settings, programming mode, word
/// addresses, paged program and read, the universal command and signature reads. Like the sketch it
/// drives SPI at a fixed 125 kHz, commits a flash page when the address crosses into the next one and
/// waits 30 ms after each commit, writes EEPROM byte by byte with 45 ms each, and answers STK_NOSYNC
/// when a command does not end in CRC_EOP.
public final class SimulatedArduinoISP: SerialProgrammerSimulator {
    public let chip: SimulatedAVR
    /// The sketch's SPI clock: SPI_CLOCK 1 MHz/6 on a 16 MHz AVR picks the SPI divider 128, 125 kHz.
    public var sckHertz: Double = 125_000

    static let insync: UInt8 = 0x14, ok: UInt8 = 0x10, failed: UInt8 = 0x11, unknown: UInt8 = 0x12, nosync: UInt8 = 0x15
    static let eop: UInt8 = 0x20

    private var input: [UInt8] = []
    private var pmode = false
    private var here = 0
    private var pageSize = 0
    private var eepromSize = 0

    public init(chip: SimulatedAVR) { self.chip = chip }

    public func receive(_ bytes: [UInt8]) -> [UInt8] {
        input += bytes
        var out: [UInt8] = []
        while let (consumed, reply) = command() {
            input.removeFirst(consumed)
            out += reply
        }
        return out
    }

    /// Parses one complete command from the input, or nil if more bytes are needed.
    private func command() -> (Int, [UInt8])? {
        guard let c = input.first else { return nil }
        func need(_ n: Int) -> Bool { input.count >= n }
        /// The sketch's empty_reply/breply: the byte after the arguments must be CRC_EOP.
        func reply(after n: Int, _ body: () -> [UInt8]) -> (Int, [UInt8])? {
            guard need(n + 1) else { return nil }
            guard input[n] == Self.eop else { return (n + 1, [Self.nosync]) }
            return (n + 1, [Self.insync] + body() + [Self.ok])
        }
        switch c {
        case 0x30: return reply(after: 1) { [] }                                  // get sync
        case 0x31: return reply(after: 1) { Array("AVR ISP".utf8) }               // sign on
        case 0x41:                                                                // get parameter
            guard need(2) else { return nil }
            let values: [UInt8: UInt8] = [0x80: 2, 0x81: 1, 0x82: 18, 0x93: UInt8(ascii: "S")]
            let parameter = input[1]
            return reply(after: 2) { [values[parameter] ?? 0] }
        case 0x42:                                                                // set device
            guard need(22) else { return nil }
            let p = Array(input[1..<21])
            pageSize = Int(p[12]) << 8 | Int(p[13])
            eepromSize = Int(p[14]) << 8 | Int(p[15])
            return reply(after: 21) { [] }
        case 0x45: return reply(after: 6) { [] }                                  // extended parameters
        case 0x50:                                                                // enter programming mode
            guard need(2) else { return nil }
            if !pmode { startProgrammingMode() }
            return reply(after: 1) { [] }
        case 0x51:                                                                // leave programming mode
            guard need(2) else { return nil }
            chip.setReset(held: false)
            pmode = false
            return reply(after: 1) { [] }
        case 0x55:                                                                // load address (words)
            guard need(4) else { return nil }
            let address = Int(input[1]) | Int(input[2]) << 8
            return reply(after: 3) { here = address; return [] }
        case 0x60: return reply(after: 3) { [] }
        case 0x61: return reply(after: 2) { [] }
        case 0x64:                                                                // program page
            guard need(4) else { return nil }
            let length = Int(input[1]) << 8 | Int(input[2])
            let memory = input[3]
            guard memory == UInt8(ascii: "F") || memory == UInt8(ascii: "E") else { return (4, [Self.failed]) }
            guard need(4 + length + 1) else { return nil }
            let data = Array(input[4..<4 + length])
            guard input[4 + length] == Self.eop else { return (5 + length, [Self.nosync]) }
            if memory == UInt8(ascii: "F") {
                writeFlash(data)
                return (5 + length, [Self.insync, Self.ok])
            }
            return (5 + length, [Self.insync, writeEEPROM(data)])
        case 0x74:                                                                // read page
            guard need(5) else { return nil }
            let length = Int(input[1]) << 8 | Int(input[2])
            let memory = input[3]
            guard input[4] == Self.eop else { return (5, [Self.nosync]) }
            var data: [UInt8] = []
            if memory == UInt8(ascii: "F") {
                for _ in stride(from: 0, to: length, by: 2) {
                    data.append(spi([0x20, UInt8(here >> 8 & 0xFF), UInt8(here & 0xFF), 0]))
                    data.append(spi([0x28, UInt8(here >> 8 & 0xFF), UInt8(here & 0xFF), 0]))
                    here += 1
                }
            } else if memory == UInt8(ascii: "E") {
                let start = here * 2
                for a in start..<start + length { data.append(spi([0xA0, UInt8(a >> 8 & 0xFF), UInt8(a & 0xFF), 0xFF])) }
            }
            return (5, [Self.insync] + data + [memory == UInt8(ascii: "F") || memory == UInt8(ascii: "E") ? Self.ok : Self.failed])
        case 0x56:                                                                // universal
            guard need(6) else { return nil }
            let instruction = Array(input[1..<5])
            return reply(after: 5) { [spi(instruction)] }
        case 0x75:                                                                // read signature
            return reply(after: 1) { [spi([0x30, 0, 0, 0]), spi([0x30, 0, 1, 0]), spi([0x30, 0, 2, 0])] }
        case Self.eop:
            return (1, [Self.nosync])
        default:
            guard need(2) else { return nil }
            return (2, [input[1] == Self.eop ? Self.unknown : Self.nosync])
        }
    }

    private func spi(_ bytes: [UInt8]) -> UInt8 { chip.exchange(bytes, sckHertz: sckHertz)[3] }

    private func startProgrammingMode() {
        // Pulse RESET, wait 50 ms, send Programming Enable without checking its echo (as the sketch does).
        chip.setReset(held: false)
        chip.setReset(held: true)
        chip.clock.advance(nanoseconds: 70_000_000)
        _ = spi([0xAC, 0x53, 0x00, 0x00])
        pmode = true
    }

    private var currentPage: Int {
        switch pageSize {
        case 32: return here & ~0x0F
        case 64: return here & ~0x1F
        case 128: return here & ~0x3F
        case 256: return here & ~0x7F
        default: return here
        }
    }

    private func writeFlash(_ data: [UInt8]) {
        var page = currentPage
        var x = 0
        while x < data.count {
            if page != currentPage {
                commit(page)
                page = currentPage
            }
            _ = spi([0x40, UInt8(here >> 8 & 0xFF), UInt8(here & 0xFF), data[x]])
            _ = spi([0x48, UInt8(here >> 8 & 0xFF), UInt8(here & 0xFF), x + 1 < data.count ? data[x + 1] : 0xFF])
            x += 2
            here += 1
        }
        commit(page)
    }

    private func commit(_ page: Int) {
        _ = spi([0x4C, UInt8(page >> 8 & 0xFF), UInt8(page & 0xFF), 0])
        chip.clock.advance(nanoseconds: 30_000_000)   // delay(PTIME) of the programming LED flicker
    }

    private func writeEEPROM(_ data: [UInt8]) -> UInt8 {
        guard data.count <= eepromSize else { return Self.failed }
        let start = here * 2
        for (i, byte) in data.enumerated() {
            let a = start + i
            _ = spi([0xC0, UInt8(a >> 8 & 0xFF), UInt8(a & 0xFF), byte])
            chip.clock.advance(nanoseconds: 45_000_000)
        }
        return Self.ok
    }
}
