import Transport
import Parts

/// An STM32 (or a clone) as a debugger sees it through the AHB access port: flash at 0x08000000 behind
/// its family's flash interface (``SimulatedFlashInterface``), SRAM, option bytes, DBGMCU_IDCODE, the
/// flash size register and unique id, the Cortex-M core's debug registers and CPUID, and the ROM table's
/// peripheral ID registers. Read protection (loaded at reset) faults every debug access to flash.
public final class SimulatedSTM32 {
    public let clock: VirtualClock
    public let model: SimulatedSTM32Model
    public internal(set) var flash: [UInt8]
    public var flashSize: Int { model.flashSize }
    public private(set) var sram: [UInt8]
    /// Option bytes as stored, in the family's layout.
    public internal(set) var optionBytes: [UInt8]
    /// Read protection as loaded at the last reset.
    public internal(set) var isReadProtected: Bool
    /// The SW-DP IDCODE (a fault can make a genuine chip answer a clone's).
    public var debugPortIDCode: UInt32

    // Counters for summaries and tests.
    public internal(set) var accessesProgrammed = 0
    public internal(set) var unitsErased = 0
    public internal(set) var massErases = 0

    /// Until when the flash interface is busy (virtual nanoseconds).
    var busyUntil: UInt64 = 0
    private var interface: SimulatedFlashInterface!

    public init(model: SimulatedSTM32Model, clock: VirtualClock, flash: [UInt8]? = nil, readProtected: Bool = false) {
        self.clock = clock
        self.model = model
        var image = flash ?? []
        image += [UInt8](repeating: 0xFF, count: max(0, model.flashSize - image.count))
        self.flash = Array(image.prefix(model.flashSize))
        sram = [UInt8](repeating: 0, count: model.sramSize)
        debugPortIDCode = model.debugPortIDCode
        isReadProtected = readProtected
        optionBytes = []
        switch model.controller {
        case let .f1(pageSize, widths, program, pageErase, massErase):
            interface = SimulatedF1FlashInterface(chip: self, pageSize: pageSize, widths: widths, programNanoseconds: program,
                                                  pageEraseNanoseconds: pageErase, massEraseNanoseconds: massErase)
        case let .f4(sectors, word, erasePerKiB, massErase):
            interface = SimulatedF4FlashInterface(chip: self, sectors: sectors, wordNanoseconds: word, eraseNanosecondsPerKiB: erasePerKiB,
                                                  massEraseNanoseconds: massErase)
        }
        optionBytes = interface.factoryOptionBytes(readProtected: readProtected)
    }

    public static let flashBase = SimulatedSTM32Model.flashBase
    static let sramBase: UInt32 = 0x2000_0000

    /// A system reset: option bytes reload, the flash interface locks again.
    public func reset() {
        isReadProtected = interface.optionBytesProtectFlash
        if demcr & 0x1 == 0 { isHalted = false }   // VC_CORERESET keeps the core halted at the reset vector
        interface.reset()
    }

    /// Erases all of main flash (a mass erase, or what leaving read protection does).
    func eraseAll(taking nanoseconds: UInt64) {
        flash = [UInt8](repeating: 0xFF, count: model.flashSize)
        massErases += 1
        busyUntil = clock.now + nanoseconds
    }

    /// Accesses during an operation stall the bus (RM0008 §3.3.3, RM0368 §3.5.1).
    func stallWhileBusy() { clock.advance(to: busyUntil) }

    var isBusy: Bool { clock.now < busyUntil }

    // MARK: The Cortex-M core's debug registers (ARMv7-M Architecture Reference Manual, C1.6)

    /// Whether the core is halted (DHCSR.S_HALT).
    public private(set) var isHalted = false
    private var debugEnabled = false
    private var demcr: UInt32 = 0
    private var debugMCUControl: UInt32 = 0

    private func systemControlRegister(_ address: UInt32) -> UInt32 {
        switch address {
        case 0xE000_ED00: return model.cpuID
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

    /// The ROM table's PIDR4…PIDR7, PIDR0…PIDR3 at 0xE00FFFD0 (CoreSight): part 0x4C3, the designer's JEP106
    /// code in PIDR1[7:4]/PIDR2[2:0] with the "JEDEC" bit, its continuation count in PIDR4[3:0].
    private func romTableRegister(_ address: UInt32) -> UInt32 {
        let designer = model.designer
        switch address {
        case 0xE00F_FFD0: return UInt32(designer >> 8 & 0x0F)
        case 0xE00F_FFE0: return 0xC3
        case 0xE00F_FFE4: return 0x04 | UInt32(designer & 0x0F) << 4
        case 0xE00F_FFE8: return UInt32(designer >> 4 & 0x07) | 0x08
        case 0xE00F_FFF0: return 0x0D
        case 0xE00F_FFF4: return 0x10
        case 0xE00F_FFF8: return 0x05
        case 0xE00F_FFFC: return 0xB1
        default: return 0
        }
    }

    // MARK: Bus access (what the ST-Link's access port does)

    /// Reads `count` bytes; nil where the access faults.
    public func read(_ address: UInt32, count: Int) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(count)
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

    private func word(_ value: UInt32, byte a: UInt32) -> UInt8 { UInt8(value >> (8 * (a & 3)) & 0xFF) }

    private func readByte(_ a: UInt32) -> UInt8? {
        let options = interface.optionBase, register = interface.registerBase, sizeRegister = model.flashSizeRegister
        switch a {
        case Self.flashBase..<Self.flashBase + UInt32(flashSize):
            return isReadProtected ? nil : flash[Int(a - Self.flashBase)]
        case Self.sramBase..<Self.sramBase + UInt32(sram.count):
            return sram[Int(a - Self.sramBase)]
        case options..<options + UInt32(optionBytes.count):
            return optionBytes[Int(a - options)]
        case sizeRegister & ~3..<sizeRegister + 4:
            // F_SIZE (KiB), then the half-word after it; reserved bytes before it in its word read 0xFF.
            guard a >= sizeRegister else { return 0xFF }
            let value = UInt32(model.flashSize / 1024) | UInt32(model.sizeRegisterUpperHalf) << 16
            return UInt8(value >> (8 * (a - sizeRegister)) & 0xFF)
        case model.uniqueIDAddress..<model.uniqueIDAddress + 12:
            let uniqueID: [UInt8] = [0x2C, 0x12, 0x19, 0x00, 0x2B, 0x13, 0x59, 0x37, 0x33, 0x4D, 0x4E, 0x00]
            return uniqueID[Int(a - model.uniqueIDAddress)]
        case 0xE004_2000..<0xE004_2004:
            return word(model.mcuIDCode, byte: a)
        case 0xE004_2004..<0xE004_2008:
            return word(debugMCUControl, byte: a)
        case 0xE000_1000..<0xE000_1004:   // DWT_CTRL: four comparators (NUMCOMP)
            return word(0x4000_0000, byte: a)
        case 0xE000_2000..<0xE000_2004:   // FP_CTRL: six code and two literal comparators
            return word(0x0000_0260, byte: a)
        case 0xE000_E000..<0xE000_F000:
            return word(systemControlRegister(a & ~3), byte: a)
        case 0xE00F_F000..<0xE010_0000:
            return word(romTableRegister(a & ~3), byte: a)
        case register..<register + 0x40:
            return word(interface.register((a - register) & ~3), byte: a)
        default:
            return nil
        }
    }

    private func store(_ a: UInt32, _ value: UInt32, width: Int) -> Bool {
        let options = interface.optionBase, register = interface.registerBase
        switch a {
        case Self.sramBase..<Self.sramBase + UInt32(sram.count):
            for i in 0..<width where Int(a - Self.sramBase) + i < sram.count { sram[Int(a - Self.sramBase) + i] = UInt8(value >> (8 * UInt32(i)) & 0xFF) }
            return true
        case register..<register + 0x40:
            // A narrower access lands in its byte lanes of the 32-bit register.
            let shift = 8 * ((a - register) & 3)
            interface.store(register: (a - register) & ~3, width == 4 ? value : value << shift)
            return true
        case 0xE000_E000..<0xE000_F000:
            if width == 4 { storeSystemControlRegister(a, value) }
            return true
        case 0xE004_2004 where width == 4:   // DBGMCU_CR: debug in low-power modes, which openocd sets
            debugMCUControl = value
            return true
        case 0xE000_1000..<0xE000_1100, 0xE000_2000..<0xE000_2100:   // DWT and FPB: accepted, not modelled
            return true
        case Self.flashBase..<Self.flashBase + UInt32(flashSize):
            stallWhileBusy()
            return interface.program(flashAt: Int(a - Self.flashBase), value, width: width)
        case options..<options + UInt32(optionBytes.count):
            stallWhileBusy()
            return interface.program(optionAt: Int(a - options), value, width: width)
        default:
            return false
        }
    }
}

/// A family's flash interface inside a simulated chip: its registers, and what a bus write into flash or
/// the option bytes does.
protocol SimulatedFlashInterface: AnyObject {
    /// Where the interface's registers start.
    var registerBase: UInt32 { get }
    /// Where the option bytes are read.
    var optionBase: UInt32 { get }
    /// The option bytes as the factory leaves them, or read-protected.
    func factoryOptionBytes(readProtected: Bool) -> [UInt8]
    /// Whether the stored option bytes protect flash (what a reset loads).
    var optionBytesProtectFlash: Bool { get }
    func register(_ offset: UInt32) -> UInt32
    func store(register offset: UInt32, _ value: UInt32)
    /// A bus write of `width` bytes into main flash at `index`; false when the access faults.
    func program(flashAt index: Int, _ value: UInt32, width: Int) -> Bool
    func program(optionAt index: Int, _ value: UInt32, width: Int) -> Bool
    /// What a reset does to the interface: it locks again.
    func reset()
}
