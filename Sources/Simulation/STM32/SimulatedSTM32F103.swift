import Transport
import Parts

/// An STM32F103 medium-density (Bluepill) as a debugger sees it through the AHB access port: 64 KiB of
/// flash at 0x08000000 with its controller at 0x40022000 (RM0008 §3: KEYR, OPTKEYR, SR, CR, AR, OBR),
/// option bytes at 0x1FFFF800, DBGMCU_IDCODE and the flash size register. Flash erases to 0xFF in 1 KiB
/// pages, programs a half-word at a time (PGERR on a half-word that is not erased), stalls the bus while
/// busy, and keeps its lock until the key sequence. Read protection (RDP other than 0xA5, loaded at reset)
/// faults every debug access to flash; programming RDP back to 0xA5 mass-erases the flash.
public final class SimulatedSTM32F103 {
    public let clock: VirtualClock
    public private(set) var flash: [UInt8]
    public let flashSize = 64 * 1024
    public let pageSize = 1024
    public private(set) var sram = [UInt8](repeating: 0, count: 20 * 1024)
    /// Option bytes as stored: RDP, nRDP, USER, nUSER, Data0, nData0, Data1, nData1, WRP0…3 with complements.
    public private(set) var optionBytes: [UInt8]
    /// Read protection as loaded at the last reset (OBR.RDPRT).
    public private(set) var isReadProtected: Bool
    /// The SW-DP IDCODE: 0x1BA01477 for ST's Cortex-M3; clones answer differently.
    public var debugPortIDCode: UInt32 = 0x1BA0_1477
    /// DBGMCU_IDCODE: REV_ID 0x2003, DEV_ID 0x410 (medium density).
    public var mcuIDCode: UInt32 = 0x2003_6410

    /// Datasheet STM32F103x8/B, "Flash memory characteristics": tPROG 52.5 µs typical for a half-word,
    /// tERASE and tME 20 ms minimum for a page and the whole array.
    public var halfWordProgramNanoseconds: UInt64 = 52_500
    public var pageEraseNanoseconds: UInt64 = 20_000_000
    public var massEraseNanoseconds: UInt64 = 20_000_000

    // Flash controller state.
    private var keyState = 0, optionKeyState = 0
    private var locked = true
    private var optionWriteEnabled = false
    private var control: UInt32 = 0             // CR (LOCK is reported from `locked`)
    private var status: UInt32 = 0              // SR: BSY 0x01, PGERR 0x04, WRPRTERR 0x10, EOP 0x20
    private var address: UInt32 = 0             // AR
    private var busyUntil: UInt64 = 0
    public private(set) var halfWordsProgrammed = 0
    public private(set) var pagesErased = 0
    public private(set) var massErases = 0

    public init(clock: VirtualClock, flash: [UInt8]? = nil, readProtected: Bool = false) {
        self.clock = clock
        var image = flash ?? []
        image += [UInt8](repeating: 0xFF, count: max(0, 64 * 1024 - image.count))
        self.flash = Array(image.prefix(64 * 1024))
        optionBytes = [readProtected ? 0x00 : 0xA5, readProtected ? 0xFF : 0x5A, 0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00,
                       0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00]
        isReadProtected = readProtected
    }

    public static let flashBase: UInt32 = 0x0800_0000
    static let sramBase: UInt32 = 0x2000_0000
    static let controller: UInt32 = 0x4002_2000
    static let optionBase: UInt32 = 0x1FFF_F800

    /// A system reset: option bytes reload, the flash controller locks again.
    public func reset() {
        isReadProtected = optionBytes[0] != 0xA5
        if demcr & 0x1 == 0 { isHalted = false }   // VC_CORERESET keeps the core halted at the reset vector
        locked = true
        optionWriteEnabled = false
        control = 0
        keyState = 0
        optionKeyState = 0
    }

    // MARK: The Cortex-M3 core's debug registers (ARMv7-M Architecture Reference Manual, C1.6)

    /// Whether the core is halted (DHCSR.S_HALT).
    public private(set) var isHalted = false
    private var debugEnabled = false
    private var demcr: UInt32 = 0
    /// CPUID of the Cortex-M3 r1p1 in the F103 (PM0056 §4.4.1).
    public var cpuID: UInt32 = 0x411F_C231

    private func systemControlRegister(_ address: UInt32) -> UInt32 {
        switch address {
        case 0xE000_ED00: return cpuID
        case 0xE000_EDF0:   // DHCSR: S_REGRDY, S_HALT, C_HALT, C_DEBUGEN
            return (isHalted ? 0x0003_0002 : 0) | (debugEnabled ? 0x1 : 0)
        case 0xE000_EDFC: return demcr
        default: return 0
        }
    }

    private func storeSystemControlRegister(_ address: UInt32, _ value: UInt32) {
        switch address {
        case 0xE000_EDF0 where value >> 16 == 0xA05F:   // DHCSR, with its DBGKEY
            debugEnabled = value & 0x1 != 0
            isHalted = debugEnabled && value & 0x2 != 0
        case 0xE000_EDFC: demcr = value
        case 0xE000_ED0C where value >> 16 == 0x05FA && value & 0x4 != 0: reset()   // AIRCR.SYSRESETREQ
        default: break
        }
    }

    // MARK: Bus access (what the ST-Link's access port does)

    /// Reads `count` bytes; nil where the access faults.
    public func read(_ address: UInt32, count: Int) -> [UInt8]? {
        var out: [UInt8] = []
        for a in address..<address + UInt32(count) {
            guard let byte = readByte(a) else { return nil }
            out.append(byte)
        }
        return out
    }

    /// Writes with accesses of `width` bytes (1, 2 or 4); false where the access faults.
    public func write(_ address: UInt32, _ bytes: [UInt8], width: Int) -> Bool {
        var offset = 0
        while offset + width <= bytes.count {
            let a = address + UInt32(offset)
            var value: UInt32 = 0
            for i in 0..<width { value |= UInt32(bytes[offset + i]) << (8 * UInt32(i)) }
            guard store(a, value, width: width) else { return false }
            offset += width
        }
        return true
    }

    private func readByte(_ a: UInt32) -> UInt8? {
        switch a {
        case Self.flashBase..<Self.flashBase + UInt32(flashSize):
            return isReadProtected ? nil : flash[Int(a - Self.flashBase)]
        case Self.sramBase..<Self.sramBase + UInt32(sram.count):
            return sram[Int(a - Self.sramBase)]
        case Self.optionBase..<Self.optionBase + 16:
            return optionBytes[Int(a - Self.optionBase)]
        case 0x1FFF_F7E0..<0x1FFF_F7F4:
            // F_SIZE (KiB, 16 bits), then the 96-bit unique id.
            let uniqueID: [UInt8] = [0x2C, 0x12, 0x19, 0x00, 0x2B, 0x13, 0x59, 0x37, 0x33, 0x4D, 0x4E, 0x00]
            switch a - 0x1FFF_F7E0 {
            case 0: return UInt8((flashSize / 1024) & 0xFF)
            case 1: return UInt8((flashSize / 1024) >> 8)
            case 8..<20: return uniqueID[Int(a - 0x1FFF_F7E8)]
            default: return 0xFF
            }
        case 0xE004_2000..<0xE004_2004:
            return UInt8(mcuIDCode >> (8 * (a - 0xE004_2000)) & 0xFF)
        case 0xE000_E000..<0xE000_F000:
            return UInt8(systemControlRegister(a & ~3) >> (8 * (a & 3)) & 0xFF)
        case Self.controller..<Self.controller + 0x24:
            let offset = (a - Self.controller) & ~3
            let register = registerValue(offset)
            return UInt8(register >> (8 * ((a - Self.controller) & 3)) & 0xFF)
        default:
            return nil
        }
    }

    private func registerValue(_ offset: UInt32) -> UInt32 {
        switch offset {
        case 0x0C: return status | (clock.now < busyUntil ? 0x01 : 0)
        case 0x10: return control | (locked ? 0x80 : 0) | (optionWriteEnabled ? 0x200 : 0)
        case 0x14: return address
        case 0x1C: return (isReadProtected ? 0x02 : 0) | UInt32(optionBytes[2]) << 2   // OBR: RDPRT, USER
        case 0x20: return UInt32(optionBytes[8]) | UInt32(optionBytes[10]) << 8 | UInt32(optionBytes[12]) << 16 | UInt32(optionBytes[14]) << 24
        default: return 0
        }
    }

    private func store(_ a: UInt32, _ value: UInt32, width: Int) -> Bool {
        switch a {
        case Self.sramBase..<Self.sramBase + UInt32(sram.count):
            for i in 0..<width where Int(a - Self.sramBase) + i < sram.count { sram[Int(a - Self.sramBase) + i] = UInt8(value >> (8 * UInt32(i)) & 0xFF) }
            return true
        case Self.controller..<Self.controller + 0x24:
            writeRegister(a - Self.controller, value)
            return true
        case 0xE000_E000..<0xE000_F000:
            if width == 4 { storeSystemControlRegister(a, value) }
            return true
        case Self.flashBase..<Self.flashBase + UInt32(flashSize):
            guard width == 2 else { status |= 0x04; return true }   // F1 flash programs half-words only
            stallWhileBusy()
            guard control & 0x01 != 0, !locked else { return true }
            if isReadProtected { status |= 0x10; return false }
            let index = Int(a - Self.flashBase)
            let current = UInt16(flash[index]) | UInt16(flash[index + 1]) << 8
            let new = UInt16(value & 0xFFFF)
            if current != 0xFFFF && new != 0 { status |= 0x04; return true }
            flash[index] = UInt8(new & 0xFF)
            flash[index + 1] = UInt8(new >> 8)
            halfWordsProgrammed += 1
            busyUntil = clock.now + halfWordProgramNanoseconds
            status |= 0x20
            return true
        case Self.optionBase..<Self.optionBase + 16:
            guard width == 2 else { return true }
            stallWhileBusy()
            guard control & 0x10 != 0, optionWriteEnabled else { return true }
            let index = Int(a - Self.optionBase) & ~1
            let byte = UInt8(value & 0xFF)
            if index == 0, isReadProtected, byte == 0xA5 {
                // Removing read protection mass-erases the main flash first.
                flash = [UInt8](repeating: 0xFF, count: flashSize)
                massErases += 1
                busyUntil = clock.now + massEraseNanoseconds
            } else {
                busyUntil = clock.now + halfWordProgramNanoseconds
            }
            optionBytes[index] &= byte
            optionBytes[index + 1] = ~optionBytes[index]
            status |= 0x20
            return true
        default:
            return false
        }
    }

    private func writeRegister(_ offset: UInt32, _ value: UInt32) {
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

    /// STRT: a page erase, mass erase, or option-byte erase.
    private func start() {
        stallWhileBusy()
        if control & 0x02 != 0 {                       // PER
            guard !isReadProtected || address >= Self.flashBase + 4 * UInt32(pageSize) else { status |= 0x10; return }
            let page = Int((address - Self.flashBase) / UInt32(pageSize)) % (flashSize / pageSize)
            for i in page * pageSize..<(page + 1) * pageSize { flash[i] = 0xFF }
            pagesErased += 1
            busyUntil = clock.now + pageEraseNanoseconds
        } else if control & 0x04 != 0 {                // MER
            flash = [UInt8](repeating: 0xFF, count: flashSize)
            massErases += 1
            busyUntil = clock.now + massEraseNanoseconds
        } else if control & 0x20 != 0, optionWriteEnabled {   // OPTER
            optionBytes = [UInt8](repeating: 0xFF, count: 16)
            busyUntil = clock.now + pageEraseNanoseconds
        }
        control &= ~0x40
        status |= 0x20
    }

    /// The AHB access waits while the controller is busy (RM0008 §3.3.3: accesses during an operation stall).
    private func stallWhileBusy() { clock.advance(to: busyUntil) }
}
