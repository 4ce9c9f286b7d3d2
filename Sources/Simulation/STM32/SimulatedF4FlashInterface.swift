/// RM0368 §3's flash interface at 0x40023C00 (STM32F401/F411): KEYR, OPTKEYR, SR, CR, OPTCR. Flash erases
/// by sector (SER with SNB) or all at once (MER); programming takes accesses of the width PSIZE selects
/// (PGPERR otherwise, PGSERR without PG); OPTCR holds the option bytes, which OPTSTRT programs: leaving
/// read protection level 1 for level 0 (RDP 0xAA) mass-erases the flash first, and level 2 (0xCC) stays.
/// Under level 1 a debugger can neither read, program nor erase flash (RM0368 §3.6.3, Table 10).
final class SimulatedF4FlashInterface: SimulatedFlashInterface {
    unowned let chip: SimulatedSTM32
    let sectors: [Int]
    let wordNanoseconds: UInt64, eraseNanosecondsPerKiB: UInt64, massEraseNanoseconds: UInt64

    let registerBase: UInt32 = 0x4002_3C00
    let optionBase: UInt32 = 0x1FFF_C000

    private var keyState = 0, optionKeyState = 0
    private var locked = true
    private var optionsLocked = true
    private var control: UInt32 = 0     // CR without LOCK (reported from `locked`)
    private var status: UInt32 = 0      // SR: EOP 0, OPERR 1, WRPERR 4, PGAERR 5, PGPERR 6, PGSERR 7, RDERR 8 (BSY 16 from the chip)
    /// OPTCR's option fields as written since the last reset, which OPTSTRT programs; nil: as stored.
    private var writtenOptionFields: UInt32?
    private var optionFields: UInt32 { writtenOptionFields ?? storedOptionFields }

    init(chip: SimulatedSTM32, sectors: [Int], wordNanoseconds: UInt64, eraseNanosecondsPerKiB: UInt64, massEraseNanoseconds: UInt64) {
        self.chip = chip
        self.sectors = sectors
        self.wordNanoseconds = wordNanoseconds
        self.eraseNanosecondsPerKiB = eraseNanosecondsPerKiB
        self.massEraseNanoseconds = massEraseNanoseconds
    }

    /// USER (BOR off, software watchdog, no reset on stop/standby), RDP, reserved, then nWRP (no sector
    /// write-protected) at offset 8: what OPTCR reads as 0x0FFFAAED on a factory chip.
    func factoryOptionBytes(readProtected: Bool) -> [UInt8] {
        var bytes = [UInt8](repeating: 0xFF, count: 16)
        bytes[0] = 0xEC
        bytes[1] = readProtected ? 0x55 : 0xAA
        bytes[9] = 0x0F
        return bytes
    }

    var optionBytesProtectFlash: Bool { chip.optionBytes[1] != 0xAA }

    func reset() {
        locked = true
        optionsLocked = true
        control = 0
        keyState = 0
        optionKeyState = 0
        writtenOptionFields = nil
    }

    private var storedOptionFields: UInt32 {
        let bytes = chip.optionBytes
        return UInt32(bytes[0] & 0xFC) | UInt32(bytes[1]) << 8 | UInt32(bytes[8]) << 16 | UInt32(bytes[9]) << 24
    }

    func register(_ offset: UInt32) -> UInt32 {
        switch offset {
        case 0x0C: return status | (chip.isBusy ? 1 << 16 : 0)
        case 0x10: return control | (locked ? 1 << 31 : 0)
        case 0x14: return optionFields | (optionsLocked ? 1 : 0)
        default: return 0
        }
    }

    func store(register offset: UInt32, _ value: UInt32) {
        switch offset {
        case 0x04:   // KEYR
            if keyState == 0 && value == 0x4567_0123 { keyState = 1 } else if keyState == 1 && value == 0xCDEF_89AB { locked = false; keyState = 0 } else { keyState = 0 }
        case 0x08:   // OPTKEYR
            if optionKeyState == 0 && value == 0x0819_2A3B { optionKeyState = 1 } else if optionKeyState == 1 && value == 0x4C5D_6E7F { optionsLocked = false; optionKeyState = 0 } else { optionKeyState = 0 }
        case 0x0C:   // SR: write 1 to clear
            status &= ~(value & 0x1F3)
        case 0x10:   // CR
            if value & 1 << 31 != 0 { locked = true; control = 0; return }
            if locked { status |= 1 << 7; return }
            control = value & 0x0301_03FF
            if value & 1 << 16 != 0 { start() }
        case 0x14:   // OPTCR
            if optionsLocked { return }
            if value & 1 != 0 { optionsLocked = true }
            writtenOptionFields = value & 0xFFFF_FFFC
            if value & 0x2 != 0 { programOptions() }
        default:
            break
        }
    }

    /// The access width PSIZE selects: 1, 2, 4 (or 8, which a debugger's 32-bit bus cannot give).
    private var programWidth: Int { 1 << Int(control >> 8 & 0x3) }

    func program(flashAt index: Int, _ value: UInt32, width: Int) -> Bool {
        if chip.isReadProtected { status |= 1 << 4; return false }
        guard !locked, control & 0x1 != 0 else { status |= 1 << 7; return true }
        guard width == programWidth else { status |= 1 << 6; return true }
        for i in 0..<width { chip.flash[index + i] &= UInt8(value >> (8 * UInt32(i)) & 0xFF) }
        chip.accessesProgrammed += 1
        chip.busyUntil = chip.clock.now + wordNanoseconds
        status |= 0x1
        return true
    }

    /// The option bytes are programmed through OPTCR, not by bus writes.
    func program(optionAt index: Int, _ value: UInt32, width: Int) -> Bool { false }

    /// STRT: a sector or mass erase.
    private func start() {
        chip.stallWhileBusy()
        defer { control &= ~(1 << 16) }
        if chip.isReadProtected { status |= 1 << 4; return }
        if control & 0x2 != 0 {
            let sector = Int(control >> 3 & 0xF)
            guard sector < sectors.count else { status |= 1 << 7; return }
            let start = sectors.prefix(sector).reduce(0, +), size = sectors[sector]
            for i in start..<min(start + size, chip.flashSize) { chip.flash[i] = 0xFF }
            chip.unitsErased += 1
            chip.busyUntil = chip.clock.now + UInt64(size / 1024) * eraseNanosecondsPerKiB
        } else if control & 0x4 != 0 {
            chip.eraseAll(taking: massEraseNanoseconds)
        }
        status |= 0x1
    }

    /// OPTSTRT: programs the option fields into the option bytes. Level 2 is permanent; leaving level 1
    /// for level 0 erases the flash first.
    private func programOptions() {
        chip.stallWhileBusy()
        let stored = chip.optionBytes
        guard stored[1] != 0xCC else { return }
        let rdp = UInt8(optionFields >> 8 & 0xFF)
        if stored[1] != 0xAA, rdp == 0xAA {
            chip.eraseAll(taking: massEraseNanoseconds)
        } else {
            chip.busyUntil = chip.clock.now + 16 * eraseNanosecondsPerKiB
        }
        chip.optionBytes[0] = UInt8(optionFields & 0xFC) | (stored[0] & 0x03)
        chip.optionBytes[1] = rdp
        chip.optionBytes[8] = UInt8(optionFields >> 16 & 0xFF)
        chip.optionBytes[9] = UInt8(optionFields >> 24 & 0xFF)
    }
}
