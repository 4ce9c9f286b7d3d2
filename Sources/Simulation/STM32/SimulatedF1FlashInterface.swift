/// RM0008 §3's flash program and erase controller (FPEC) at 0x40022000: KEYR, OPTKEYR, SR, CR, AR, OBR,
/// WRPR. Flash erases to 0xFF in pages, programs an access of an allowed width at a time (PGERR on a
/// location that is not erased, or on a width the chip does not take), stalls the bus while busy, and
/// keeps its lock until the key sequence. Programming RDP back to 0xA5 on a protected chip mass-erases it.
final class SimulatedF1FlashInterface: SimulatedFlashInterface {
    unowned let chip: SimulatedSTM32
    let pageSize: Int
    let widths: Set<Int>
    let programNanoseconds: UInt64, pageEraseNanoseconds: UInt64, massEraseNanoseconds: UInt64

    let registerBase: UInt32 = 0x4002_2000
    let optionBase: UInt32 = 0x1FFF_F800

    private var keyState = 0, optionKeyState = 0
    private var locked = true
    private var optionWriteEnabled = false
    private var control: UInt32 = 0             // CR (LOCK is reported from `locked`)
    private var status: UInt32 = 0              // SR: BSY 0x01, PGERR 0x04, WRPRTERR 0x10, EOP 0x20
    private var address: UInt32 = 0             // AR

    init(chip: SimulatedSTM32, pageSize: Int, widths: Set<Int>, programNanoseconds: UInt64, pageEraseNanoseconds: UInt64, massEraseNanoseconds: UInt64) {
        self.chip = chip
        self.pageSize = pageSize
        self.widths = widths
        self.programNanoseconds = programNanoseconds
        self.pageEraseNanoseconds = pageEraseNanoseconds
        self.massEraseNanoseconds = massEraseNanoseconds
    }

    /// RDP, nRDP, USER, nUSER, Data0, nData0, Data1, nData1, WRP0…3 with complements.
    func factoryOptionBytes(readProtected: Bool) -> [UInt8] {
        [readProtected ? 0x00 : 0xA5, readProtected ? 0xFF : 0x5A, 0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00,
         0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00]
    }

    var optionBytesProtectFlash: Bool { chip.optionBytes[0] != 0xA5 }

    func reset() {
        locked = true
        optionWriteEnabled = false
        control = 0
        keyState = 0
        optionKeyState = 0
    }

    func register(_ offset: UInt32) -> UInt32 {
        let options = chip.optionBytes
        switch offset {
        case 0x0C: return status | (chip.isBusy ? 0x01 : 0)
        case 0x10: return control | (locked ? 0x80 : 0) | (optionWriteEnabled ? 0x200 : 0)
        case 0x14: return address
        case 0x1C: return (chip.isReadProtected ? 0x02 : 0) | UInt32(options[2]) << 2   // OBR: RDPRT, USER
        case 0x20: return UInt32(options[8]) | UInt32(options[10]) << 8 | UInt32(options[12]) << 16 | UInt32(options[14]) << 24
        default: return 0
        }
    }

    func store(register offset: UInt32, _ value: UInt32) {
        switch offset {
        case 0x04:   // KEYR
            if keyState == 0 && value == 0x4567_0123 { keyState = 1 } else if keyState == 1 && value == 0xCDEF_89AB { locked = false; keyState = 0 } else { keyState = 0 }
        case 0x08:   // OPTKEYR
            if optionKeyState == 0 && value == 0x4567_0123 { optionKeyState = 1 } else if optionKeyState == 1 && value == 0xCDEF_89AB { optionWriteEnabled = !locked; optionKeyState = 0 } else { optionKeyState = 0 }
        case 0x0C:   // SR: write 1 to clear PGERR, WRPRTERR, EOP
            status &= ~(value & 0x34)
        case 0x10:   // CR
            if value & 0x80 != 0 { locked = true; optionWriteEnabled = false; control = 0; return }
            if locked { return }
            if value & 0x200 == 0 { optionWriteEnabled = false }
            control = value & 0x1077
            if value & 0x40 != 0 { start() }
        case 0x14:
            address = value
        default:
            break
        }
    }

    func program(flashAt index: Int, _ value: UInt32, width: Int) -> Bool {
        guard widths.contains(width) else { status |= 0x04; return true }
        guard control & 0x01 != 0, !locked else { return true }
        if chip.isReadProtected { status |= 0x10; return false }
        // Only an erased location takes a value; zero may be written over anything (RM0008 §3.3.3).
        let erased = chip.flash[index..<index + width].allSatisfy { $0 == 0xFF }
        if !erased && value != 0 { status |= 0x04; return true }
        for i in 0..<width { chip.flash[index + i] = UInt8(value >> (8 * UInt32(i)) & 0xFF) }
        chip.accessesProgrammed += 1
        chip.busyUntil = chip.clock.now + programNanoseconds
        status |= 0x20
        return true
    }

    func program(optionAt offset: Int, _ value: UInt32, width: Int) -> Bool {
        guard width == 2 else { return true }
        guard control & 0x10 != 0, optionWriteEnabled else { return true }
        let index = offset & ~1
        let byte = UInt8(value & 0xFF)
        if index == 0, chip.isReadProtected, byte == 0xA5 {
            chip.eraseAll(taking: massEraseNanoseconds)   // removing read protection mass-erases the main flash first
        } else {
            chip.busyUntil = chip.clock.now + programNanoseconds
        }
        chip.optionBytes[index] &= byte
        chip.optionBytes[index + 1] = ~chip.optionBytes[index]
        status |= 0x20
        return true
    }

    /// STRT: a page erase, mass erase, or option-byte erase.
    private func start() {
        chip.stallWhileBusy()
        if control & 0x02 != 0 {                       // PER
            guard !chip.isReadProtected || address >= SimulatedSTM32.flashBase + 4 * UInt32(pageSize) else { status |= 0x10; return }
            let page = Int((address - SimulatedSTM32.flashBase) / UInt32(pageSize)) % (chip.flashSize / pageSize)
            for i in page * pageSize..<(page + 1) * pageSize { chip.flash[i] = 0xFF }
            chip.unitsErased += 1
            chip.busyUntil = chip.clock.now + pageEraseNanoseconds
        } else if control & 0x04 != 0 {                // MER
            chip.eraseAll(taking: massEraseNanoseconds)
        } else if control & 0x20 != 0, optionWriteEnabled {   // OPTER
            chip.optionBytes = [UInt8](repeating: 0xFF, count: 16)
            chip.busyUntil = chip.clock.now + pageEraseNanoseconds
        }
        control &= ~0x40
        status |= 0x20
    }
}
