/// The parts bootmedic knows. Numbers from the datasheets and avrdude's part database
/// (checked against Debian's /etc/avrdude.conf by the test suite).
public enum PartCatalog {
    /// Every AVR part, in the order `bootmedic parts` lists them.
    public static let avrParts: [AVRPart] = [
        usbMega("ATmega16U4", "atmega16u4", "m16u4", Signature(0x1E, 0x94, 0x88), flash: 16 * 1024, page: 128,
                eeprom: 512, eepromPage: 4, boot: 512, high: 0x99),
        usbMega("ATmega32U4", "atmega32u4", "m32u4", Signature(0x1E, 0x95, 0x87), flash: 32 * 1024, page: 128,
                eeprom: 1024, eepromPage: 4, boot: 512, high: 0x99),
        usbMega("AT90USB646", "at90usb646", "usb646", Signature(0x1E, 0x96, 0x82), flash: 64 * 1024, page: 256,
                eeprom: 2048, eepromPage: 8, boot: 1024, high: 0x9B),
        usbMega("AT90USB647", "at90usb647", "usb647", Signature(0x1E, 0x96, 0x82), flash: 64 * 1024, page: 256,
                eeprom: 2048, eepromPage: 8, boot: 1024, high: 0x9B),
        usbMega("AT90USB1286", "at90usb1286", "usb1286", Signature(0x1E, 0x97, 0x82), flash: 128 * 1024, page: 256,
                eeprom: 4096, eepromPage: 8, boot: 1024, high: 0x99),
        usbMega("AT90USB1287", "at90usb1287", "usb1287", Signature(0x1E, 0x97, 0x82), flash: 128 * 1024, page: 256,
                eeprom: 4096, eepromPage: 8, boot: 1024, high: 0x99),
        AVRPart(
            name: "ATmega32A", id: "atmega32a", avrdudeID: "m32a", signature: Signature(0x1E, 0x95, 0x02),
            flash: MemoryGeometry(size: 32 * 1024, pageSize: 128), eeprom: MemoryGeometry(size: 1024, pageSize: 4),
            fuseBytes: [
                FuseByteLayout(.low, implemented: 0xFF, factoryDefault: 0xE1, fields: [
                    FuseField("BODLEVEL", .low, 0x80, "brown-out trigger level (programmed: 4.0 V, unprogrammed: 2.7 V)"),
                    FuseField("BODEN", .low, 0x40, "brown-out detector enabled"),
                    FuseField("SUT", .low, 0x30, "start-up time"),
                    FuseField("CKSEL", .low, 0x0F, "clock source"),
                ]),
                FuseByteLayout(.high, implemented: 0xFF, factoryDefault: 0x99, fields: [
                    FuseField("OCDEN", .high, 0x80, "on-chip debugging over JTAG enabled"),
                    FuseField("JTAGEN", .high, 0x40, "JTAG interface enabled"),
                    FuseField("SPIEN", .high, 0x20, "serial (ISP) programming enabled"),
                    FuseField("CKOPT", .high, 0x10, "full-swing oscillator (crystal amplifier)"),
                    FuseField("EESAVE", .high, 0x08, "EEPROM preserved through chip erase"),
                    FuseField("BOOTSZ", .high, 0x06, "boot section size"),
                    FuseField("BOOTRST", .high, 0x01, "reset jumps to the boot section"),
                ]),
            ],
            lock: LockLayout(implementedMask: 0x3F, factoryDefault: 0x3F), smallestBootSection: 512, clockFamily: .mega32,
            times: ProgrammingTimes(flashPageWrite: 4500, eepromWrite: 9000, chipErase: 9000, fuseWrite: 2000)
        ),
        AVRPart(
            name: "ATmega328P", id: "atmega328p", avrdudeID: "m328p", signature: Signature(0x1E, 0x95, 0x0F),
            flash: MemoryGeometry(size: 32 * 1024, pageSize: 128), eeprom: MemoryGeometry(size: 1024, pageSize: 4),
            fuseBytes: [
                lowByteWithDivider(factoryDefault: 0x62),
                FuseByteLayout(.high, implemented: 0xFF, factoryDefault: 0xD9, fields: [
                    FuseField("RSTDISBL", .high, 0x80, "RESET pin disabled (becomes an I/O pin)"),
                    FuseField("DWEN", .high, 0x40, "debugWIRE enabled (replaces RESET)"),
                    FuseField("SPIEN", .high, 0x20, "serial (ISP) programming enabled"),
                    FuseField("WDTON", .high, 0x10, "watchdog always on"),
                    FuseField("EESAVE", .high, 0x08, "EEPROM preserved through chip erase"),
                    FuseField("BOOTSZ", .high, 0x06, "boot section size"),
                    FuseField("BOOTRST", .high, 0x01, "reset jumps to the boot section"),
                ]),
                FuseByteLayout(.extended, implemented: 0x07, factoryDefault: 0xFF, fields: [
                    FuseField("BODLEVEL", .extended, 0x07, "brown-out trigger level"),
                ]),
            ],
            lock: LockLayout(implementedMask: 0x3F, factoryDefault: 0x3F), smallestBootSection: 512, clockFamily: .mega328,
            times: ProgrammingTimes(flashPageWrite: 4500, eepromWrite: 3600, chipErase: 9000, fuseWrite: 4500)
        ),
    ]

    /// STM32F1 chip ids, as DBGMCU_IDCODE reports them.
    public static let stm32Chips: [STM32Chip] = [
        STM32Chip(chipID: 0x412, name: "STM32F10x low-density", maximumFlash: 32 * 1024, pageSize: 1024, sram: 10 * 1024),
        STM32Chip(chipID: 0x410, name: "STM32F10x medium-density", maximumFlash: 128 * 1024, pageSize: 1024, sram: 20 * 1024),
        STM32Chip(chipID: 0x414, name: "STM32F10x high-density", maximumFlash: 512 * 1024, pageSize: 2048, sram: 64 * 1024),
        STM32Chip(chipID: 0x430, name: "STM32F10x XL-density", maximumFlash: 1024 * 1024, pageSize: 2048, sram: 96 * 1024),
        STM32Chip(chipID: 0x418, name: "STM32F105/107 connectivity line", maximumFlash: 256 * 1024, pageSize: 2048, sram: 64 * 1024),
        STM32Chip(chipID: 0x420, name: "STM32F100 value line medium-density", maximumFlash: 128 * 1024, pageSize: 1024, sram: 8 * 1024),
        STM32Chip(chipID: 0x428, name: "STM32F100 value line high-density", maximumFlash: 512 * 1024, pageSize: 2048, sram: 32 * 1024),
    ]

    /// The part a rule or the command line names, by id ("atmega32u4"), avrdude id ("m32u4") or datasheet name.
    public static func part(named name: String) -> Part? {
        let key = name.lowercased()
        if let avr = avrParts.first(where: { $0.id == key || $0.avrdudeID == key || $0.name.lowercased() == key }) {
            return .avr(avr)
        }
        if STM32Chip.familyNames.contains(key) { return .stm32(family: key) }
        return nil
    }

    /// Every AVR part answering `signature` (several parts share one, e.g. AT90USB646 and 647).
    public static func avrParts(withSignature signature: Signature) -> [AVRPart] {
        avrParts.filter { $0.signature == signature }
    }

    /// The STM32F1 chip for a DBGMCU_IDCODE DEV_ID.
    public static func stm32Chip(id: UInt16) -> STM32Chip? { stm32Chips.first { $0.chipID == id } }

    /// Every name `part(named:)` accepts, for suggestions in error messages.
    public static var allNames: [String] { avrParts.map(\.id) + STM32Chip.familyNames }

    // The USB AVRs share one fuse layout; only sizes, signature and factory high byte differ.
    private static func usbMega(_ name: String, _ id: String, _ avrdudeID: String, _ signature: Signature,
                                flash: Int, page: Int, eeprom: Int, eepromPage: Int, boot: Int, high: UInt8) -> AVRPart {
        AVRPart(
            name: name, id: id, avrdudeID: avrdudeID, signature: signature,
            flash: MemoryGeometry(size: flash, pageSize: page), eeprom: MemoryGeometry(size: eeprom, pageSize: eepromPage),
            fuseBytes: [
                // Factory values are those of the chips Atmel ships with the DFU bootloader (the seed's table).
                lowByteWithDivider(factoryDefault: 0x5E),
                FuseByteLayout(.high, implemented: 0xFF, factoryDefault: high, fields: [
                    FuseField("OCDEN", .high, 0x80, "on-chip debugging over JTAG enabled"),
                    FuseField("JTAGEN", .high, 0x40, "JTAG interface enabled (takes four port F pins)"),
                    FuseField("SPIEN", .high, 0x20, "serial (ISP) programming enabled"),
                    FuseField("WDTON", .high, 0x10, "watchdog always on"),
                    FuseField("EESAVE", .high, 0x08, "EEPROM preserved through chip erase"),
                    FuseField("BOOTSZ", .high, 0x06, "boot section size"),
                    FuseField("BOOTRST", .high, 0x01, "reset jumps to the boot section"),
                ]),
                FuseByteLayout(.extended, implemented: 0x0F, factoryDefault: 0xF3, fields: [
                    FuseField("HWBE", .extended, 0x08, "hardware boot enable: HWB pin low at reset starts the bootloader"),
                    FuseField("BODLEVEL", .extended, 0x07, "brown-out trigger level"),
                ]),
            ],
            lock: LockLayout(implementedMask: 0x3F, factoryDefault: 0x3F), smallestBootSection: boot, clockFamily: .usbMega,
            times: ProgrammingTimes(flashPageWrite: 4500, eepromWrite: 9000, chipErase: 9000, fuseWrite: 9000)
        )
    }

    private static func lowByteWithDivider(factoryDefault: UInt8) -> FuseByteLayout {
        FuseByteLayout(.low, implemented: 0xFF, factoryDefault: factoryDefault, fields: [
            FuseField("CKDIV8", .low, 0x80, "system clock divided by 8 at start-up"),
            FuseField("CKOUT", .low, 0x40, "system clock output on CLKO"),
            FuseField("SUT", .low, 0x30, "start-up time"),
            FuseField("CKSEL", .low, 0x0F, "clock source"),
        ])
    }
}

/// A part as a rule names it: an AVR with a signature, or an STM32 family identified by chip id.
public enum Part: Hashable, Sendable, CustomStringConvertible {
    case avr(AVRPart)
    /// An STM32 family name such as "stm32f103"; the chip id read over SWD gives the density.
    case stm32(family: String)

    public var id: String {
        switch self {
        case let .avr(part): return part.id
        case let .stm32(family): return family
        }
    }

    public var description: String {
        switch self {
        case let .avr(part): return part.name
        case let .stm32(family): return family.uppercased()
        }
    }
}

/// An STM32F1 density line, identified by the DEV_ID field of DBGMCU_IDCODE.
public struct STM32Chip: Hashable, Sendable, CustomStringConvertible {
    /// DEV_ID, e.g. 0x410 for medium density.
    public let chipID: UInt16
    public let name: String
    /// The largest flash the line has; the chip's own size comes from the flash size register.
    public let maximumFlash: Int
    public let pageSize: Int
    public let sram: Int

    /// The SW-DP IDCODE of ST's own silicon in this line: the F1's Cortex-M3 debug port (0x1BA01477).
    /// A chip that reports an F1 chip id through another debug port is a clone: a Cortex-M4-class port
    /// (0x2BA01477, what a genuine STM32F4 answers) is what CKS32F103 and APM32F103 carry.
    public var genuineDebugPortIDCode: UInt32 { 0x1BA0_1477 }

    /// Where flash starts, and where a bootloader binary is written.
    public static let flashBase: UInt32 = 0x0800_0000
    /// SRAM base, where a flash loader runs.
    public static let sramBase: UInt32 = 0x2000_0000
    /// DBGMCU_IDCODE: DEV_ID in bits 11:0, REV_ID in bits 31:16.
    public static let idcodeRegister: UInt32 = 0xE004_2000
    /// Flash size register (F_SIZE), in KiB.
    public static let flashSizeRegister: UInt32 = 0x1FFF_F7E0

    /// The family names a rule may use for these chips.
    public static let familyNames = ["stm32f103", "stm32f101", "stm32f102", "stm32f105", "stm32f107", "stm32f100", "stm32f1"]

    public var description: String { "\(name) (chip id \(formatHex(UInt32(chipID), width: 3)))" }
}
