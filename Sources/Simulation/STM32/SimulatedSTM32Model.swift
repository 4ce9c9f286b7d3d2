import Parts

/// What a simulated STM32 (or clone) is: the values it answers over SWD and how its flash behaves. The
/// identification values are the ones ``Parts/STM32Variant`` recognises; the timings are typical ones,
/// which the driver's bounds (the datasheets' maxima) must cover.
public struct SimulatedSTM32Model: Sendable {
    /// The part name `--part` takes ("gd32f103").
    public let part: String
    /// "STM32F103C8 (Bluepill)", for people.
    public let description: String
    public var debugPortIDCode: UInt32
    public let cpuID: UInt32
    /// The JEP106 designer its ROM table shows (continuation count << 8 | code).
    public let designer: UInt16
    /// DBGMCU_IDCODE: REV_ID << 16 | DEV_ID.
    public let mcuIDCode: UInt32
    public let flashSize: Int
    public let sramSize: Int
    /// Where F_SIZE (KiB, 16 bits) sits; the unique id follows the family's layout.
    public let flashSizeRegister: UInt32
    /// What the half-word after F_SIZE reads: reserved (0xFFFF) on ST's chips, the SRAM size in KiB on a GD32.
    public var sizeRegisterUpperHalf: UInt16 = 0xFFFF
    public let uniqueIDAddress: UInt32
    public let controller: Controller

    /// The flash interface and its timing.
    public enum Controller: Sendable {
        /// RM0008's FPEC at 0x40022000: equal pages, programming in `widths` (bytes), option bytes at 0x1FFFF800.
        case f1(pageSize: Int, widths: Set<Int>, programNanoseconds: UInt64, pageEraseNanoseconds: UInt64, massEraseNanoseconds: UInt64)
        /// RM0368's flash interface at 0x40023C00: sectors, PSIZE, OPTCR, option bytes at 0x1FFFC000.
        case f4(sectors: [Int], wordNanoseconds: UInt64, eraseNanosecondsPerKiB: UInt64, massEraseNanoseconds: UInt64)
    }

    /// ST's F1 timing (STM32F103x8/B datasheet, typical): tPROG 52.5 µs, tERASE and tME 20 ms.
    static let stF1 = Controller.f1(pageSize: 1024, widths: [2], programNanoseconds: 52_500, pageEraseNanoseconds: 20_000_000, massEraseNanoseconds: 20_000_000)

    private static func bluepill(_ part: String, _ description: String, debugPort: UInt32, cpuID: UInt32, designer: UInt16,
                                 idcode: UInt32 = 0x2003_6410, controller: Controller = stF1) -> SimulatedSTM32Model {
        SimulatedSTM32Model(part: part, description: description, debugPortIDCode: debugPort, cpuID: cpuID, designer: designer, mcuIDCode: idcode,
                            flashSize: 64 * 1024, sramSize: 20 * 1024, flashSizeRegister: 0x1FFF_F7E0, uniqueIDAddress: 0x1FFF_F7E8, controller: controller)
    }

    /// ST's STM32F103C8 (the genuine Bluepill): medium density, 64 KiB, Cortex-M3 r1p1.
    public static let stm32f103 = bluepill("stm32f103", "STM32F103C8 (Bluepill)", debugPort: 0x1BA0_1477, cpuID: 0x411F_C231, designer: 0x020)
    /// GigaDevice's GD32F103C8: its own JEP106 code, word programming, slower erases.
    public static let gd32f103: SimulatedSTM32Model = {
        var model = bluepill("gd32f103", "GD32F103C8 (a Bluepill clone)", debugPort: 0x1BA0_1477, cpuID: 0x411F_C231, designer: 0x751, idcode: 0x1303_0410,
                             controller: .f1(pageSize: 1024, widths: [2, 4], programNanoseconds: 40_000, pageEraseNanoseconds: 50_000_000, massEraseNanoseconds: 300_000_000))
        model.sizeRegisterUpperHalf = 20
        return model
    }()
    public static let cks32f103 = bluepill("cks32f103", "CKS32F103C8 (a Bluepill clone)", debugPort: 0x2BA0_1477, cpuID: 0x412F_C231, designer: 0x020)
    public static let cs32f103 = bluepill("cs32f103", "CS32F103C8 (a Bluepill clone)", debugPort: 0x2BA0_1477, cpuID: 0x412F_C231, designer: 0x555)
    public static let apm32f103 = bluepill("apm32f103", "APM32F103C8 (a Bluepill clone)", debugPort: 0x1BA0_1477, cpuID: 0x412F_C231, designer: 0x020)

    /// RM0368 sectors: four of 16 KiB, one of 64 KiB, then 128 KiB ones. Typical x32 timing (STM32F411xC/E
    /// datasheet): a word in 16 µs, about 16 ms per KiB erased, mass erase 8 s.
    private static func blackPill(_ part: String, _ description: String, idcode: UInt32, flash: Int, sram: Int) -> SimulatedSTM32Model {
        let sectors = ([16, 16, 16, 16, 64] + [Int](repeating: 128, count: (flash / 1024 - 128) / 128)).map { $0 * 1024 }
        return SimulatedSTM32Model(part: part, description: description, debugPortIDCode: 0x2BA0_1477, cpuID: 0x410F_C241, designer: 0x020,
                                   mcuIDCode: idcode, flashSize: flash, sramSize: sram, flashSizeRegister: 0x1FFF_7A22, uniqueIDAddress: 0x1FFF_7A10,
                                   controller: .f4(sectors: sectors, wordNanoseconds: 16_000, eraseNanosecondsPerKiB: 16_000_000, massEraseNanoseconds: 8_000_000_000))
    }

    /// ST's STM32F401CC (Black Pill v1.2): 256 KiB, DEV_ID 0x423.
    public static let stm32f401 = blackPill("stm32f401", "STM32F401CC (Black Pill)", idcode: 0x1000_6423, flash: 256 * 1024, sram: 64 * 1024)
    /// ST's STM32F411CE (Black Pill v2/3): 512 KiB, DEV_ID 0x431.
    public static let stm32f411 = blackPill("stm32f411", "STM32F411CE (Black Pill)", idcode: 0x1000_6431, flash: 512 * 1024, sram: 128 * 1024)

    public static let all: [SimulatedSTM32Model] = [stm32f103, gd32f103, cks32f103, cs32f103, apm32f103, stm32f401, stm32f411]

    /// The model for a part name `--part` takes; a family name gives its usual board's chip.
    public static func named(_ part: String) -> SimulatedSTM32Model? {
        switch part.lowercased() {
        case "stm32f1", "stm32f101", "stm32f102": return .stm32f103
        case "stm32f4": return .stm32f411
        case let name: return all.first { $0.part == name }
        }
    }

    /// The family the chip belongs to (its option-byte layout, for dumps).
    public var family: STM32Family {
        switch controller {
        case .f1: return .f1
        case .f4: return .f4
        }
    }

    /// The family's flash base.
    public static let flashBase: UInt32 = 0x0800_0000
}
