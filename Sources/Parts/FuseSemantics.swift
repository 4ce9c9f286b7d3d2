/// What a part's fuse bits mean: the named fields of each byte, the factory values and the clock table,
/// from the part's datasheet ("Fuse Bits" and "Device Clocking Options Select"). avrdude's part database
/// gives which bits exist (``PartCatalog/avrdudeParts``); this gives what they do.
struct FuseSemantics: Sendable {
    struct Byte: Sendable {
        let byte: FuseByte
        let factoryDefault: UInt8
        let fields: [FuseField]
    }

    let clock: ClockFamily
    let bytes: [Byte]

    init(_ clock: ClockFamily, _ bytes: Byte...) {
        self.clock = clock
        self.bytes = bytes
    }
}

extension FuseSemantics.Byte {
    init(_ byte: FuseByte, factory: UInt8, _ fields: [(String, UInt8, String)]) {
        self.init(byte: byte, factoryDefault: factory, fields: fields.map { FuseField($0.0, byte, $0.1, $0.2) })
    }
}

extension PartCatalog {
    /// Named semantics by avrdude id, for the parts a repair bench sees most.
    static let namedFuses: [String: FuseSemantics] = {
        var table: [String: FuseSemantics] = [:]
        func add(_ ids: [String], _ semantics: FuseSemantics) { for id in ids { table[id] = semantics } }

        // ATmega48/88/168/328 and their A/P/PA/PB variants (one datasheet each, one layout per size).
        add(["m48", "m48a", "m48p", "m48pa", "m48pb"], FuseSemantics(.mega328,
            .init(.low, factory: 0x62, dividedClock),
            .init(.high, factory: 0xDF, resetDebugWireSPI + [watchdog, eesave, brownOut(0x07)]),
            .init(.extended, factory: 0xFF, [selfProgramming(0x01)])))
        add(["m88", "m88a", "m88p", "m88pa", "m88pb", "m168", "m168a", "m168p", "m168pa", "m168pb"], FuseSemantics(.mega328,
            .init(.low, factory: 0x62, dividedClock),
            .init(.high, factory: 0xDF, resetDebugWireSPI + [watchdog, eesave, brownOut(0x07)]),
            .init(.extended, factory: 0xF9, bootFields)))
        add(["m328", "m328p"], FuseSemantics(.mega328,
            .init(.low, factory: 0x62, dividedClock),
            .init(.high, factory: 0xD9, resetDebugWireSPI + [watchdog, eesave] + bootFields),
            .init(.extended, factory: 0xFF, [brownOut(0x07)])))
        // ATmega328PB datasheet, Table 32-5: CFD (bit 3) ships programmed, which disables clock failure detection.
        add(["m328pb"], FuseSemantics(.mega328,
            .init(.low, factory: 0x62, dividedClock),
            .init(.high, factory: 0xD9, resetDebugWireSPI + [watchdog, eesave] + bootFields),
            .init(.extended, factory: 0xF7, [("CFD", 0x08, "clock failure detection disabled"), brownOut(0x07)])))

        // ATmega8(A): brown-out in the low byte, CKOPT in the high byte, no CKDIV8.
        add(["m8", "m8a"], FuseSemantics(.mega32,
            .init(.low, factory: 0xE1, brownOutEnable + [startUp(0x30), clockSelect(0x0F)]),
            .init(.high, factory: 0xD9, [("RSTDISBL", 0x80, "RESET pin disabled (becomes an I/O pin)"),
                                         watchdogAt(0x40), spien, ckopt, eesave] + bootFields)))
        // ATmega16(A)/32(A): JTAG in the high byte.
        add(["m16", "m16a", "m32", "m32a"], FuseSemantics(.mega32,
            .init(.low, factory: 0xE1, brownOutEnable + [startUp(0x30), clockSelect(0x0F)]),
            .init(.high, factory: 0x99, jtag + [spien, ckopt, eesave] + bootFields)))
        // ATmega164/324/644/1284 (A/P/PA) and ATmega640/1280/1281/2560/2561 share one layout.
        add(["m164a", "m164p", "m164pa", "m324a", "m324p", "m324pa", "m644", "m644a", "m644p", "m644pa", "m1284", "m1284p",
             "m640", "m1280", "m1281", "m2560", "m2561"], FuseSemantics(.mega328,
            .init(.low, factory: 0x62, dividedClock),
            .init(.high, factory: 0x99, jtag + [spien, watchdog, eesave] + bootFields),
            .init(.extended, factory: 0xFF, [brownOut(0x07)])))

        // The USB AVRs. Factory values are those of the chips Atmel ships with the DFU bootloader (the seed's table).
        add(["m8u2", "m16u2", "m32u2", "usb82", "usb162"], FuseSemantics(.usbMegaU2,
            .init(.low, factory: 0x5E, dividedClock),
            .init(.high, factory: 0xD9, [("DWEN", 0x80, "debugWIRE enabled (replaces RESET)"),
                                         ("RSTDISBL", 0x40, "RESET pin disabled (becomes an I/O pin)"),
                                         spien, watchdog, eesave] + bootFields),
            .init(.extended, factory: 0xF4, [hardwareBoot, brownOut(0x07)])))
        for (ids, high) in [(["m16u4", "m32u4", "usb1286", "usb1287"], UInt8(0x99)), (["usb646", "usb647"], 0x9B)] {
            add(ids, FuseSemantics(.usbMega,
                .init(.low, factory: 0x5E, dividedClock),
                .init(.high, factory: high, [("OCDEN", 0x80, "on-chip debugging over JTAG enabled"),
                                             ("JTAGEN", 0x40, "JTAG interface enabled (takes four port F pins)"),
                                             spien, watchdog, eesave] + bootFields),
                .init(.extended, factory: 0xF3, [hardwareBoot, brownOut(0x07)])))
        }

        // ATtiny13(A): the whole clock, SPIEN and EESAVE in the low byte.
        add(["t13", "t13a"], FuseSemantics(.tiny13,
            .init(.low, factory: 0x6A, [("SPIEN", 0x80, spien.2), ("EESAVE", 0x40, eesave.2), watchdogAt(0x20),
                                        ("CKDIV8", 0x10, dividedClock[0].2), startUp(0x0C), clockSelect(0x03)]),
            .init(.high, factory: 0xFF, [selfProgramming(0x10), ("DWEN", 0x08, "debugWIRE enabled (replaces RESET)"),
                                         brownOut(0x06), ("RSTDISBL", 0x01, "RESET pin disabled (becomes an I/O pin)")])))
        for (ids, clock) in [(["t25", "t45", "t85"], ClockFamily.tiny85), (["t24", "t24a", "t44", "t44a", "t84", "t84a"], .tiny84)] {
            add(ids, FuseSemantics(clock,
                .init(.low, factory: 0x62, dividedClock),
                .init(.high, factory: 0xDF, resetDebugWireSPI + [watchdog, eesave, brownOut(0x07)]),
                .init(.extended, factory: 0xFF, [selfProgramming(0x01)])))
        }
        // ATtiny2313(A)/4313: ships on the 8 MHz RC oscillator divided by 8.
        add(["t2313", "t2313a", "t4313"], FuseSemantics(.tiny2313,
            .init(.low, factory: 0x64, dividedClock),
            .init(.high, factory: 0xDF, [("DWEN", 0x80, "debugWIRE enabled (replaces RESET)"), ("EESAVE", 0x40, eesave.2),
                                         spien, watchdog, brownOut(0x0E), ("RSTDISBL", 0x01, "RESET pin disabled (becomes an I/O pin)")]),
            .init(.extended, factory: 0xFF, [selfProgramming(0x01)])))
        return table
    }()

    // The fields that recur across the families, as (name, mask, meaning).
    private static let dividedClock: [(String, UInt8, String)] = [
        ("CKDIV8", 0x80, "system clock divided by 8 at start-up"),
        ("CKOUT", 0x40, "system clock output on CLKO"),
        startUp(0x30), clockSelect(0x0F),
    ]
    private static let resetDebugWireSPI: [(String, UInt8, String)] = [
        ("RSTDISBL", 0x80, "RESET pin disabled (becomes an I/O pin)"),
        ("DWEN", 0x40, "debugWIRE enabled (replaces RESET)"),
        spien,
    ]
    private static let jtag: [(String, UInt8, String)] = [
        ("OCDEN", 0x80, "on-chip debugging over JTAG enabled"),
        ("JTAGEN", 0x40, "JTAG interface enabled"),
    ]
    private static let brownOutEnable: [(String, UInt8, String)] = [
        ("BODLEVEL", 0x80, "brown-out trigger level (programmed: 4.0 V, unprogrammed: 2.7 V)"),
        ("BODEN", 0x40, "brown-out detector enabled"),
    ]
    private static let bootFields: [(String, UInt8, String)] = [
        ("BOOTSZ", 0x06, "boot section size"),
        ("BOOTRST", 0x01, "reset jumps to the boot section"),
    ]
    private static let spien = ("SPIEN", UInt8(0x20), "serial (ISP) programming enabled")
    private static let watchdog = watchdogAt(0x10)
    private static let eesave = ("EESAVE", UInt8(0x08), "EEPROM preserved through chip erase")
    private static let ckopt = ("CKOPT", UInt8(0x10), "full-swing oscillator (crystal amplifier)")
    private static let hardwareBoot = ("HWBE", UInt8(0x08), "hardware boot enable: HWB pin low at reset starts the bootloader")

    private static func watchdogAt(_ mask: UInt8) -> (String, UInt8, String) { ("WDTON", mask, "watchdog always on") }
    private static func brownOut(_ mask: UInt8) -> (String, UInt8, String) { ("BODLEVEL", mask, "brown-out trigger level") }
    private static func startUp(_ mask: UInt8) -> (String, UInt8, String) { ("SUT", mask, "start-up time") }
    private static func clockSelect(_ mask: UInt8) -> (String, UInt8, String) { ("CKSEL", mask, "clock source") }
    private static func selfProgramming(_ mask: UInt8) -> (String, UInt8, String) {
        ("SELFPRGEN", mask, "self-programming enabled: code may write flash (SPM), as a bootloader must")
    }
}
