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

    /// Every STM32 chip line bootmedic knows, across its families.
    public static var stm32Chips: [STM32Chip] { STM32Family.all.flatMap(\.chips) }

    /// The part a rule or the command line names, by id ("atmega32u4"), avrdude id ("m32u4") or datasheet name.
    public static func part(named name: String) -> Part? {
        let key = name.lowercased()
        if let avr = avrParts.first(where: { $0.id == key || $0.avrdudeID == key || $0.name.lowercased() == key }) {
            return .avr(avr)
        }
        if let family = STM32Family.all.first(where: { $0.partNames.contains(key) }) { return .stm32(STM32Line(name: key, family: family.id)) }
        return nil
    }

    /// Every AVR part answering `signature` (several parts share one, e.g. AT90USB646 and 647).
    public static func avrParts(withSignature signature: Signature) -> [AVRPart] {
        avrParts.filter { $0.signature == signature }
    }

    /// The STM32 chip line for a DBGMCU_IDCODE DEV_ID.
    public static func stm32Chip(id: UInt16) -> STM32Chip? { stm32Chips.first { $0.chipID == id } }

    /// Every name `part(named:)` accepts, for suggestions in error messages.
    public static var allNames: [String] { avrParts.map(\.id) + STM32Family.all.flatMap(\.partNames) }

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

/// A part as a rule names it: an AVR with a signature, or an STM32 line whose chips the chip id read
/// over SWD tells apart.
public enum Part: Hashable, Sendable, CustomStringConvertible {
    case avr(AVRPart)
    case stm32(STM32Line)

    public var id: String {
        switch self {
        case let .avr(part): return part.id
        case let .stm32(line): return line.name
        }
    }

    public var description: String {
        switch self {
        case let .avr(part): return part.name
        case let .stm32(line): return line.name.uppercased()
        }
    }
}

