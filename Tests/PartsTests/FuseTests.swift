import FirmwareImage
import Parts
import TestSupport
import Testing

@Suite struct CatalogTests {
    @Test func looksPartsUpByEveryName() {
        #expect(PartCatalog.part(named: "atmega32u4") == .avr(avr("m32u4")))
        #expect(PartCatalog.part(named: "ATmega32U4")?.id == "atmega32u4")
        #expect(PartCatalog.part(named: "stm32f103") == .stm32(STM32Line(name: "stm32f103", family: .f1, chipIDs: [0x412, 0x410, 0x414, 0x430], variant: "st-stm32f1")))
        #expect(PartCatalog.part(named: "atmega32u5") == nil)
        #expect(PartCatalog.avrParts(withSignature: Signature(0x1E, 0x96, 0x82)).map(\.id) == ["at90usb646", "at90usb647"])
        #expect(PartCatalog.stm32Chip(id: 0x410)?.pageSize == 1024)
        #expect(PartCatalog.stm32Chip(id: 0x410)?.sram == 20 * 1024)
        #expect(PartCatalog.stm32Chip(id: 0x414)?.pageSize == 2048)
    }

    @Test func parsesSignatures() {
        #expect(Signature("0x1E9587") == Signature(0x1E, 0x95, 0x87))
        #expect(Signature("1e 95 87") == Signature(0x1E, 0x95, 0x87))
        #expect(Signature("0x1e 0x95 0x87")?.description == "0x1E9587")
        #expect(Signature("1E95") == nil)
        #expect(Signature("zz9587") == nil)
        #expect(Signature(0xFF, 0xFF, 0xFF).meansNoTarget)
        #expect(Signature(0, 0, 0).meansNoTarget)
    }

    @Test func bootSectionsFollowBOOTSZ() {
        let m32u4 = avr("atmega32u4")
        #expect(m32u4.bootSections.map(\.start) == [0x7E00, 0x7C00, 0x7800, 0x7000])
        #expect(m32u4.bootSection(bootsz: 0).description == "4096 bytes (2048 words) at 0x7000 (BOOTSZ=00)")
        #expect(avr("at90usb1286").bootSection(bootsz: 0).start == 0x1E000)
        #expect(avr("at90usb646").bootSection(bootsz: 1).start == 0xF000)
        #expect(avr("atmega16u4").bootSection(bootsz: 0).start == 0x3000)
    }
}

@Suite struct FuseDecodingTests {
    @Test func decodesCaterinaFuses() {
        let d = avr("atmega32u4").describe(FuseSet(low: 0xFF, high: 0xD8, extended: 0xCB))
        #expect(d.clock?.source == .crystal)
        #expect(d.clock?.description == "low-power crystal oscillator, 8–16 MHz (CKSEL=1111, SUT=11), not divided (CKDIV8 unprogrammed)")
        #expect(d.bootSection?.start == 0x7000)
        #expect(d.resetVector == .bootSection(0x7000))
        #expect(d.enabled.map(\.name) == ["SPIEN", "BOOTRST"])
    }

    @Test func decodesAtmelDFUFusesWithHardwareBoot() {
        let d = avr("atmega32u4").describe(FuseSet(low: 0x5E, high: 0x99, extended: 0xF3))
        #expect(d.clock?.dividedBy8 == true)
        #expect(d.resetVector == .applicationOrHardwareBoot(0x7000))
        #expect(d.enabled.map(\.name) == ["CKDIV8", "JTAGEN", "SPIEN", "HWBE"])
        #expect(d.lines.contains("reset: reset starts the application at 0x0000; the bootloader at 0x7000 runs when HWB is held low at reset (HWBE programmed)"))
    }

    @Test func decodesATmega32AClocks() {
        let m32a = avr("atmega32a")
        #expect(m32a.clock(low: 0x0F)?.detail == "external crystal or resonator, 3–8 MHz (up to 16 MHz with CKOPT programmed)")
        #expect(m32a.clock(low: 0xE1)?.detail == "calibrated internal RC oscillator, 1 MHz")
        #expect(m32a.clock(low: 0xE1)?.dividedBy8 == nil)
        #expect(m32a.clock(low: 0xE9)?.source == .lowFrequencyCrystal)
        #expect(m32a.clock(low: 0xE0)?.source == .externalClock)
    }

    @Test func comparesUnderTheImplementedBitMask() {
        let m32u4 = avr("atmega32u4")
        let want = FuseSet(low: 0xFF, high: 0xD8, extended: 0xFB)
        // The seed's avrdude log reads the extended fuse back as 0xCB.
        #expect(m32u4.fusesMatch(expected: want, actual: FuseSet(low: 0xFF, high: 0xD8, extended: 0xCB)))
        let mismatches = m32u4.mismatches(expected: want, actual: FuseSet(low: 0xFF, high: 0xD8, extended: 0xF3))
        #expect(mismatches.map(\.description) == ["extended fuse is 0xF3, expected 0xFB (bits 0x08 differ)"])
        #expect(m32u4.normalized(FuseSet(extended: 0x0B)).extended == 0xFB)
        #expect(avr("atmega328p").fusesMatch(expected: FuseSet(extended: 0x04), actual: FuseSet(extended: 0xFC)))
    }
}

@Suite struct FuseLintTests {
    /// Every row of the seed's bootloader tables, with the clock its board is built with.
    static let seedRows: [(board: String, part: String, fuses: FuseSet, clock: BoardClock)] = {
        let crystalDivided = BoardClock(source: .crystal, dividedBy8: true)
        let crystal = BoardClock(source: .crystal, dividedBy8: false)
        return [
            ("Atmel DFU ATmega16U4", "atmega16u4", FuseSet(low: 0x5E, high: 0x99, extended: 0xF3), crystalDivided),
            ("Atmel DFU ATmega16U4, JTAG off", "atmega16u4", FuseSet(low: 0x5E, high: 0xD9, extended: 0xF3), crystalDivided),
            ("Atmel DFU ATmega32U4", "atmega32u4", FuseSet(low: 0x5E, high: 0x99, extended: 0xF3), crystalDivided),
            ("Atmel DFU ATmega32U4, JTAG off", "atmega32u4", FuseSet(low: 0x5E, high: 0xD9, extended: 0xF3), crystalDivided),
            ("Atmel DFU AT90USB64", "at90usb646", FuseSet(low: 0x5E, high: 0x9B, extended: 0xF3), crystalDivided),
            ("Atmel DFU AT90USB64, JTAG off", "at90usb647", FuseSet(low: 0x5E, high: 0xDB, extended: 0xF3), crystalDivided),
            ("Atmel DFU AT90USB128", "at90usb1286", FuseSet(low: 0x5E, high: 0x99, extended: 0xF3), crystalDivided),
            ("Atmel DFU AT90USB128, JTAG off", "at90usb1287", FuseSet(low: 0x5E, high: 0xD9, extended: 0xF3), crystalDivided),
            ("Pro Micro 3V3", "atmega32u4", FuseSet(low: 0xFF, high: 0xD8, extended: 0xFE), crystal),
            ("Pro Micro 5V", "atmega32u4", FuseSet(low: 0xFF, high: 0xD8, extended: 0xFB), crystal),
            ("LilyPadUSB", "atmega32u4", FuseSet(low: 0xFF, high: 0xD8, extended: 0xFE), crystal),
            ("Pololu A-Star 32U4", "atmega32u4", FuseSet(low: 0xFF, high: 0xD0, extended: 0xF8), crystal),
            ("Adafruit Feather 32U4", "atmega32u4", FuseSet(low: 0xFF, high: 0xD8, extended: 0xFB), crystal),
            ("ItsyBitsy 3V3", "atmega32u4", FuseSet(low: 0xFF, high: 0xD8, extended: 0xFB), crystal),
            ("ItsyBitsy 5V", "atmega32u4", FuseSet(low: 0xFF, high: 0xD8, extended: 0xFB), crystal),
            ("Arduino Leonardo", "atmega32u4", FuseSet(low: 0xFF, high: 0xD8, extended: 0xFB), crystal),
            ("Arduino Micro", "atmega32u4", FuseSet(low: 0xFF, high: 0xD8, extended: 0xFB), crystal),
            ("BootloadHID", "atmega32a", FuseSet(low: 0x0F, high: 0xD0), BoardClock(source: .crystal)),
            ("USBaspLoader ATmega32A", "atmega32a", FuseSet(low: 0x1F, high: 0xC0), BoardClock(source: .crystal)),
            ("USBaspLoader ATmega328P", "atmega328p", FuseSet(low: 0xD7, high: 0xD0, extended: 0x04), crystal),
        ]
    }()

    /// The real images we have, by seed row.
    static let realImages = [
        "Atmel DFU ATmega32U4": "bootloader_atmega32u4_1_0_0.hex",
        "Atmel DFU ATmega32U4, JTAG off": "bootloader_atmega32u4_1_0_0.hex",
        "Pro Micro 5V": "Caterina-promicro16.hex",
        "Arduino Micro": "Caterina-Micro.hex",
        "BootloadHID": "bootloader_ps2avrgb_bootloadhid_1.0.1.hex",
    ]

    @Test(.needsFirmware, arguments: seedRows)
    func seedTablesPassTheLintAndPlacement(_ row: (board: String, part: String, fuses: FuseSet, clock: BoardClock)) throws {
        let part = avr(row.part)
        let lint = part.lint(row.fuses, board: row.clock)
        #expect(lint.filter { $0.severity != .note }.isEmpty, "\(row.board): \(lint)")
        // The real image where we have it; elsewhere a 1 KiB stand-in at the boot section start.
        let image: MemoryImage
        if let file = Self.realImages[row.board] {
            image = try FirmwareFile(path: Fixtures.firmware(file)).image
        } else {
            let start = part.bootSection(bootsz: (row.fuses.high! >> 1) & 3).start
            image = try MemoryImage(bytes: Array(repeating: 0x0C, count: 1024), at: start)
        }
        let placement = part.checkPlacement(of: image, fuses: row.fuses)
        #expect(placement.filter { $0.severity != .note }.isEmpty, "\(row.board): \(placement)")
    }

    @Test func refusesFusesThatShutISPOut() {
        let m328p = avr("atmega328p")
        let crystal = BoardClock(source: .crystal, dividedBy8: false)
        func codes(_ fuses: FuseSet, allow: Bool = false) -> [String] {
            m328p.lint(fuses, board: crystal, allowUnsafe: allow).filter { $0.severity == (allow ? .warning : .error) }.map(\.code.rawValue)
        }
        #expect(codes(FuseSet(high: 0xF0)) == ["disables-spi-programming"])
        #expect(codes(FuseSet(high: 0x50)) == ["disables-reset"])
        #expect(codes(FuseSet(high: 0x90)) == ["enables-debugwire"])
        #expect(codes(FuseSet(high: 0x10)) == ["disables-reset", "enables-debugwire"])
        #expect(codes(FuseSet(high: 0x10), allow: true) == ["disables-reset", "enables-debugwire"])
        let message = m328p.lint(FuseSet(high: 0xF0), board: nil).first { $0.severity == .error }?.message
        #expect(message == "high fuse 0xF0 leaves SPIEN unprogrammed: ISP programming would be disabled and only a high-voltage programmer could reach the chip again; set allow_unsafe_fuses = true in the rule if that is really meant")
    }

    @Test func refusesClockChangesWithoutConsent() {
        let m32u4 = avr("atmega32u4")
        let board = BoardClock(source: .crystal, dividedBy8: false)
        let internalRC = m32u4.lint(FuseSet(low: 0xE2), board: board)
        #expect(internalRC.map(\.code) == [.changesClockSource])
        #expect(internalRC.first?.message == "low fuse 0xE2 selects calibrated internal RC oscillator, 8 MHz, but the board declares crystal or resonator; a wrong clock source can leave the chip without a clock; set allow_unsafe_fuses = true in the rule if that is really meant")
        #expect(m32u4.lint(FuseSet(low: 0xF7), board: board).map(\.code) == [.reservedClock])
        #expect(m32u4.lint(FuseSet(low: 0xE2), board: board, allowUnsafe: true).map(\.severity) == [.warning])
        #expect(m32u4.lint(FuseSet(low: 0xFF), board: nil).map(\.code) == [.clockNotDeclared])
    }

    @Test func theDividerCKOUTAndStartUpTimeAreNotes() {
        let m32u4 = avr("atmega32u4")
        // A factory ATmega32U4 (0x5E: crystal, CKDIV8) given the Caterina rows' 0xFF with no clock declared.
        let caterina = m32u4.lint(FuseSet(low: 0xFF), board: nil, current: FuseSet(low: 0x5E))
        #expect(caterina.map(\.severity) == [.note, .note])
        #expect(caterina.map(\.code) == [.changesClockDivider, .changesStartUpTime])
        #expect(caterina.first?.message == "low fuse 0xFF clears CKDIV8 (the chip's current low fuse 0x5E divides the clock by 8): the chip runs 8 times faster from the next reset")
        #expect(m32u4.lint(FuseSet(low: 0x5E), board: nil, current: FuseSet(low: 0x5E)).isEmpty)
        let clockOut = m32u4.lint(FuseSet(low: 0x1E), board: nil, current: FuseSet(low: 0x5E))
        #expect(clockOut.map(\.description) == ["note: low fuse 0x1E programs CKOUT: the system clock is driven on the CLKO pin"])
        // The rule's own clock_div8 against its low fuse: a warning, never a refusal.
        let contradiction = m32u4.lint(FuseSet(low: 0x7F), board: BoardClock(source: .crystal, dividedBy8: false))
        #expect(contradiction.map(\.severity) == [.warning])
        #expect(contradiction.first?.message == "low fuse 0x7F programs CKDIV8, but the rule's clock_div8 = false says otherwise; harmless to ISP, but one of the two is not what the board needs")
    }

    @Test func anOscillatorClassChangeNeedsTheClockLineItSuggests() {
        // BootloadHID on a factory ATmega32A: internal RC 1 MHz (0xE1) to a crystal (0x0F).
        let m32a = avr("atmega32a")
        let refused = m32a.lint(FuseSet(low: 0x0F, high: 0xD0), board: nil, current: m32a.factoryFuses)
        #expect(refused.filter { $0.severity == .error }.map(\.code) == [.changesClockSource])
        #expect(refused.first { $0.severity == .error }?.message == "low fuse 0x0F selects external crystal or resonator, 3–8 MHz (up to 16 MHz with CKOPT programmed), but the chip's current low fuse 0xE1 selects calibrated internal RC oscillator; if the board has a crystal or resonator, declare it in the rule with clock = \"crystal\" (without one the chip is left with no clock and no ISP access)")
        let declared = m32a.lint(FuseSet(low: 0x0F, high: 0xD0), board: BoardClock(source: .crystal), current: m32a.factoryFuses)
        #expect(declared.filter { $0.severity != .note }.isEmpty, "\(declared)")
        #expect(declared.map(\.message).contains("low fuse 0x0F moves the chip from the calibrated internal RC oscillator to the crystal or resonator the board declares"))
        // allow_unsafe_fuses still turns the refusal into a warning, and says so.
        let allowed = m32a.lint(FuseSet(low: 0x0F), board: nil, current: m32a.factoryFuses, allowUnsafe: true)
        #expect(allowed.filter { $0.code == .changesClockSource }.map(\.severity) == [.warning])
    }

    /// The guide's rows as its tables print them, with no `clock` line, on a factory chip of their part:
    /// only the rows that really change the oscillator class are refused, and the `clock` line the
    /// refusal suggests is all they need.
    @Test(arguments: seedRows)
    func seedRowsRestoreAFactoryChip(_ row: (board: String, part: String, fuses: FuseSet, clock: BoardClock)) throws {
        let part = avr(row.part)
        let factory = part.factoryFuses
        let changesClass = part.clock(low: row.fuses.low!)?.source != part.clock(low: factory.low!)?.source
        let bare = part.lint(row.fuses, board: nil, current: factory)
        #expect(bare.filter { $0.severity == .error }.map(\.code) == (changesClass ? [.changesClockSource] : []), "\(row.board): \(bare)")
        #expect(bare.filter { $0.severity == .warning }.isEmpty, "\(row.board): \(bare)")
        guard changesClass else { return }
        let suggested = try #require(bare.first { $0.severity == .error }?.message.firstMatch(of: /clock = "([a-z0-9-]+)"/)?.1)
        let source = try #require(ClockSource(rawValue: String(suggested)))
        let fixed = part.lint(row.fuses, board: BoardClock(source: source), current: factory)
        #expect(fixed.filter { $0.severity != .note }.isEmpty, "\(row.board): \(fixed)")
    }

    @Test func refusesFuseBytesThePartLacks() {
        let findings = avr("atmega32a").lint(FuseSet(low: 0x0F, high: 0xD0, extended: 0xFF), board: BoardClock(source: .crystal))
        #expect(findings.map(\.description) == ["error: ATmega32A has no extended fuse byte"])
    }
}

@Suite struct PlacementTests {
    let m32u4 = avr("atmega32u4")
    let caterina = FuseSet(low: 0xFF, high: 0xD8, extended: 0xFB)

    @Test func bootloaderAboveTheBootSectionStart() throws {
        let image = try MemoryImage(bytes: Array(repeating: 1, count: 2048), at: 0x7800)
        let findings = m32u4.checkPlacement(of: image, fuses: caterina)
        #expect(findings.map(\.description) == ["error: BOOTSZ=00 puts the boot section at 0x7000, but the image has no code there (its data spans 0x7800–0x7FFF); BOOTSZ=01 (2048 bytes at 0x7800) would match"])
    }

    @Test func bootloaderBelowTheBootSectionStart() throws {
        let image = try MemoryImage(bytes: Array(repeating: 1, count: 4096), at: 0x7000)
        let findings = m32u4.checkPlacement(of: image, fuses: FuseSet(low: 0xFF, high: 0xDA, extended: 0xFB))
        #expect(findings.map(\.description) == ["error: the bootloader starts at 0x7000, below the boot section at 0x7800 that BOOTSZ=01 selects: reset would land in its middle; BOOTSZ=00 (4096 bytes at 0x7000) would match"])
    }

    @Test func resetThatNeverReachesTheBootloader() throws {
        let image = try MemoryImage(bytes: [1, 2], at: 0x7000)
        let findings = avr("atmega328p").checkPlacement(of: image, fuses: FuseSet(high: 0xD9))
        #expect(findings.map(\.description) == ["error: BOOTRST is unprogrammed: reset starts at 0x0000 and never reaches the bootloader at 0x7000"])
        let usb = m32u4.checkPlacement(of: image, fuses: FuseSet(high: 0xD9, extended: 0xFB))
        #expect(usb.map(\.code) == [.resetMissesBootloader])
        #expect(usb.first?.severity == .error)
    }

    @Test func imageLargerThanTheFlash() throws {
        let image = try MemoryImage(bytes: Array(repeating: 1, count: 4097), at: 0x7000)
        #expect(m32u4.checkPlacement(of: image, fuses: caterina).map(\.code) == [.imageBeyondFlash])
    }

    @Test(.needsFirmware) func productionImageFromZeroIsAccepted() throws {
        let micro = try FirmwareFile(path: Fixtures.firmware("Caterina-Micro.hex")).image
        #expect(m32u4.checkPlacement(of: micro, fuses: caterina).isEmpty)
    }
}

@Suite struct STM32FamilyTests {
    @Test func everyChipBelongsToTheFamilyThatListsIt() {
        for family in STM32Family.all {
            #expect(family.chips.allSatisfy { $0.family == family.id }, "\(family.name)")
        }
        #expect(STM32Line.all.allSatisfy { PartCatalog.part(named: $0.name) == .stm32($0) })
        #expect(Set(STM32Line.all.map(\.name)).count == STM32Line.all.count)
        for line in STM32Line.all {
            #expect(line.chipIDs.allSatisfy { PartCatalog.stm32Chip(id: $0)?.family == line.family }, "\(line.name)")
            #expect(line.variant.map { STM32Variant.variant(id: $0)?.family == line.family } ?? true, "\(line.name)")
        }
        #expect(PartCatalog.stm32Chip(id: 0x410)?.family == .f1)
        #expect(Set(PartCatalog.stm32Chips.map(\.chipID)).count == PartCatalog.stm32Chips.count, "chip ids are unique across families")
    }

    @Test func onlyTheErasUnitsHoldingDataAreErased() {
        let pages = FlashGeometry.pages(size: 1024)
        let image: [Range<UInt64>] = [0x0800_0000..<0x0800_1C04, 0x0800_4000..<0x0800_4001]
        #expect(pages.units(holding: image, base: 0x0800_0000, flashSize: 64 * 1024).map(\.index) == [0, 1, 2, 3, 4, 5, 6, 7, 16])
        // Sectors as RM0368 lays out an STM32F401's 256 KiB: four of 16 KiB, one of 64 KiB, one of 128 KiB.
        let sectors = FlashGeometry.sectors([16, 16, 16, 16, 64, 128].map { $0 * 1024 })
        let units = sectors.units(holding: [0x0800_0000..<0x0800_1C04, 0x0801_0000..<0x0801_0010], base: 0x0800_0000, flashSize: 256 * 1024)
        #expect(units.map(\.index) == [0, 4])
        #expect(units.map(\.address) == [0x0800_0000, 0x0801_0000])
        #expect(units.map(\.size) == [16 * 1024, 64 * 1024])
        #expect(sectors.units(holding: [0x0802_0000..<0x0804_0001], base: 0x0800_0000, flashSize: 256 * 1024).map(\.index) == [5], "nothing past the flash")
    }

    /// What each maker's chip answers, and the name it gets; a genuine chip never matches a clone's name.
    @Test(arguments: [
        (STM32Identity(debugPortIDCode: 0x1BA0_1477, cpuID: 0x411F_C231, designer: 0x020, chipID: 0x410), STM32Family.ID.f1, "st-stm32f1"),
        (STM32Identity(debugPortIDCode: 0x1BA0_1477, cpuID: 0x411F_C231, designer: 0x751, chipID: 0x410), .f1, "gd32f103"),
        (STM32Identity(debugPortIDCode: 0x2BA0_1477, cpuID: 0x412F_C231, designer: 0x555, chipID: 0x410), .f1, "cs32f103"),
        (STM32Identity(debugPortIDCode: 0x2BA0_1477, cpuID: 0x412F_C231, designer: 0x020, chipID: 0x410), .f1, "cks32f103"),
        (STM32Identity(debugPortIDCode: 0x1BA0_1477, cpuID: 0x412F_C231, designer: 0x020, chipID: 0x410), .f1, "apm32f103"),
        (STM32Identity(debugPortIDCode: 0x1BA0_1477, cpuID: 0x411F_C231, designer: nil, chipID: 0x410), .f1, "stm32f1-compatible"),
        (STM32Identity(debugPortIDCode: 0x2BA0_1477, cpuID: 0x410F_C241, designer: 0x020, chipID: 0x431), .f4, "st-stm32f4"),
        (STM32Identity(debugPortIDCode: 0x2BA0_1477, cpuID: 0x410F_C241, designer: 0x751, chipID: 0x431), .f4, "stm32f4-compatible"),
    ])
    func eachMakersChipIsRecognised(_ c: (STM32Identity, STM32Family.ID, String)) throws {
        let variant = STM32Variant.recognise(c.0, family: c.1)
        #expect(variant.id == c.2)
        let lines = STM32Line.all.filter { $0.covers(chipID: c.0.chipID, variant: variant.id) }.map(\.name)
        #expect(lines.contains(c.1.rawValue), "a family name takes clones too")
        #expect(lines.contains("stm32f103") == (c.2 == "st-stm32f1"), "stm32f103 is ST's silicon only: \(lines)")
        if STM32Variant.namedClones.contains(variant) { #expect(lines.contains(c.2)) }
    }

    @Test func aGD32HasOneKiBPagesWhereSTsHighDensityLineHasTwo() throws {
        let highDensity = try #require(PartCatalog.stm32Chip(id: 0x414))
        #expect(STM32Variant.stF1.geometry(of: highDensity) == .pages(size: 2048))
        #expect(STM32Variant.gd32f103.geometry(of: highDensity) == .pages(size: 1024))
        #expect(STM32Variant.gd32f103.flash.programWidths.first == 4)
        #expect(STM32Variant.stF4.flash.eraseMilliseconds(unitSize: 128 * 1024) == 2000)
    }

    @Test func optionBytesAreWrittenAsTheFamilyLaysThemOut() {
        let bytes: [UInt8] = [0xA5, 0x5A, 0xFF, 0x00, 0x12, 0xED, 0x34, 0xCB, 0xFF, 0x00, 0xFE, 0x01, 0xFD, 0x02, 0xFC, 0x03]
        #expect(STM32Family.f1.optionBytes.json(bytes) == "{\"data0\": 18, \"data1\": 52, \"rdp\": 165, \"user\": 255, \"wrp\": [255, 254, 253, 252]}\n")
    }
}
