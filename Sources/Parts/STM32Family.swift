/// How a family's flash is divided for erasing: equal pages (STM32F1: 1 or 2 KiB) or sectors of given
/// sizes from the flash base (STM32F4: 16, 16, 16, 16, 64, 128, … KiB).
// A struct rather than an enum with an array payload: Swift 6.3's release optimizer failed its ownership
// verification (a compiler crash) on switches over such an enum read through a borrowed STM32Chip.
public struct FlashGeometry: Hashable, Sendable {
    /// The page size of a paged flash; nil for sectors.
    public let pageSize: Int?
    /// The sector sizes in order from the flash base; empty for pages.
    public let sectorSizes: [Int]

    /// Equal pages of `size` bytes.
    public static func pages(size: Int) -> FlashGeometry { FlashGeometry(pageSize: size, sectorSizes: []) }

    /// Sectors of these sizes, in order from the flash base.
    public static func sectors(_ sizes: [Int]) -> FlashGeometry { FlashGeometry(pageSize: nil, sectorSizes: sizes) }

    /// One unit an erase command takes.
    public struct Unit: Hashable, Sendable {
        /// The unit's number: a page's or sector's index from the flash base.
        public let index: Int
        public let address: UInt32
        public let size: Int
    }

    /// The units of a flash of `flashSize` bytes at `base` that hold at least one byte of `ranges`, in order:
    /// only these need erasing.
    public func units(holding ranges: [Range<UInt64>], base: UInt32, flashSize: Int) -> [Unit] {
        var out: [Unit] = []
        var address = UInt64(base), index = 0
        let end = UInt64(base) + UInt64(flashSize)
        while address < end {
            let size: Int
            if let pageSize {
                size = pageSize
            } else {
                guard index < sectorSizes.count else { return out }
                size = sectorSizes[index]
            }
            let unit = address..<address + UInt64(size)
            if ranges.contains(where: { $0.overlaps(unit) }) { out.append(Unit(index: index, address: UInt32(address), size: size)) }
            address += UInt64(size)
            index += 1
        }
        return out
    }

    /// "pages of 1024 bytes", "sectors": what an erase step counts.
    public var unitName: String { pageSize.map { "pages of \($0) bytes" } ?? "sectors" }

    /// "1024-byte pages", "sectors of 16–128 KiB", for people.
    public var description: String {
        pageSize.map { "\($0)-byte pages" } ?? "sectors of \((sectorSizes.min() ?? 0) / 1024)–\((sectorSizes.max() ?? 0) / 1024) KiB"
    }
}

/// Where a family keeps its option bytes and what each byte means, for backups and dumps.
public struct OptionByteLayout: Hashable, Sendable {
    /// Where the option bytes are read.
    public let address: UInt32
    public let length: Int
    /// Single option bytes by name and offset ("rdp": 0).
    public let fields: [String: Int]
    /// Options that span several bytes, by name and offsets ("wrp": [8, 10, 12, 14]).
    public let groups: [String: [Int]]

    /// The option bytes as a JSON object: each field a number, each group an array, keys sorted.
    public func json(_ bytes: [UInt8]) -> String {
        func value(_ offset: Int) -> String { offset < bytes.count ? String(bytes[offset]) : "null" }
        let singles = fields.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \(value($0.value))" }
        let arrays = groups.sorted { $0.key < $1.key }.map { "\"\($0.key)\": [" + $0.value.map(value).joined(separator: ", ") + "]" }
        return "{" + (singles + arrays).joined(separator: ", ") + "}\n"
    }
}

/// An STM32 family as data: where its chip id and flash size are read, the flash geometry of each line,
/// its option bytes, and the flash controller that programs it. The controller's code sits behind a
/// protocol in `STLink`; everything a family only *is* lives here.
public struct STM32Family: Hashable, Sendable, Identifiable {
    /// The families bootmedic programs.
    public enum ID: String, Hashable, Sendable, CaseIterable {
        case f1 = "stm32f1"
        case f4 = "stm32f4"
    }

    public let id: ID
    /// "STM32F1"
    public let name: String
    /// DBGMCU_IDCODE: DEV_ID in bits 11:0, REV_ID in bits 31:16.
    public let idcodeRegister: UInt32
    /// The flash size register (F_SIZE), in KiB.
    public let flashSizeRegister: UInt32
    public let optionBytes: OptionByteLayout
    public let chips: [STM32Chip]

    /// Every family, in the order identification tries them.
    public static let all: [STM32Family] = [.f1, .f4]

    public static func family(_ id: ID) -> STM32Family { all.first { $0.id == id }! }

    /// STM32F1 (Cortex-M3): RM0008 for the registers, page sizes and option bytes; PM0075 for the
    /// flash controller.
    public static let f1 = STM32Family(
        id: .f1, name: "STM32F1", idcodeRegister: 0xE004_2000, flashSizeRegister: 0x1FFF_F7E0,
        optionBytes: OptionByteLayout(address: 0x1FFF_F800, length: 16, fields: ["rdp": 0, "user": 2, "data0": 4, "data1": 6],
                                      groups: ["wrp": [8, 10, 12, 14]]),
        chips: [
            STM32Chip(chipID: 0x412, name: "STM32F10x low-density", family: .f1, maximumFlash: 32 * 1024, geometry: .pages(size: 1024), sram: 10 * 1024),
            STM32Chip(chipID: 0x410, name: "STM32F10x medium-density", family: .f1, maximumFlash: 128 * 1024, geometry: .pages(size: 1024), sram: 20 * 1024),
            STM32Chip(chipID: 0x414, name: "STM32F10x high-density", family: .f1, maximumFlash: 512 * 1024, geometry: .pages(size: 2048), sram: 64 * 1024),
            STM32Chip(chipID: 0x430, name: "STM32F10x XL-density", family: .f1, maximumFlash: 1024 * 1024, geometry: .pages(size: 2048), sram: 96 * 1024),
            STM32Chip(chipID: 0x418, name: "STM32F105/107 connectivity line", family: .f1, maximumFlash: 256 * 1024, geometry: .pages(size: 2048), sram: 64 * 1024),
            STM32Chip(chipID: 0x420, name: "STM32F100 value line medium-density", family: .f1, maximumFlash: 128 * 1024, geometry: .pages(size: 1024), sram: 8 * 1024),
            STM32Chip(chipID: 0x428, name: "STM32F100 value line high-density", family: .f1, maximumFlash: 512 * 1024, geometry: .pages(size: 2048), sram: 32 * 1024),
        ])

    /// STM32F401/F411 (Cortex-M4, the Black Pills): RM0368 for the registers, the sector layout of
    /// §3.3 Table 5 and the option bytes of §3.6 (read at 0x1FFFC000: USER, RDP, then nWRP at 0x1FFFC008);
    /// F_SIZE at 0x1FFF7A22 (§24.2).
    public static let f4 = STM32Family(
        id: .f4, name: "STM32F4", idcodeRegister: 0xE004_2000, flashSizeRegister: 0x1FFF_7A22,
        optionBytes: OptionByteLayout(address: 0x1FFF_C000, length: 16, fields: ["user": 0, "rdp": 1], groups: ["wrp": [8, 9]]),
        chips: [
            STM32Chip(chipID: 0x423, name: "STM32F401xB/C", family: .f4, maximumFlash: 256 * 1024,
                      geometry: .sectors([16, 16, 16, 16, 64, 128].map { $0 * 1024 }), sram: 64 * 1024),
            STM32Chip(chipID: 0x433, name: "STM32F401xD/E", family: .f4, maximumFlash: 512 * 1024,
                      geometry: .sectors([16, 16, 16, 16, 64, 128, 128, 128].map { $0 * 1024 }), sram: 96 * 1024),
            STM32Chip(chipID: 0x431, name: "STM32F411xC/E", family: .f4, maximumFlash: 512 * 1024,
                      geometry: .sectors([16, 16, 16, 16, 64, 128, 128, 128].map { $0 * 1024 }), sram: 128 * 1024),
        ])
}

/// A part name a rule uses for STM32 chips ("stm32f103", "gd32f103", "stm32f4"): which family, which
/// chip lines of it, and whose silicon.
public struct STM32Line: Hashable, Sendable {
    public let name: String
    public let family: STM32Family.ID
    /// The DEV_IDs the name covers; empty for every line of the family.
    public let chipIDs: Set<UInt16>
    /// The maker's silicon the name stands for (``STM32Variant/id``); nil for any, clones included.
    public let variant: String?

    public init(name: String, family: STM32Family.ID, chipIDs: Set<UInt16> = [], variant: String?) {
        self.name = name
        self.family = family
        self.chipIDs = chipIDs
        self.variant = variant
    }

    /// Whether a chip of this line and maker answered.
    public func covers(chipID: UInt16, variant found: String) -> Bool {
        guard PartCatalog.stm32Chip(id: chipID)?.family == family else { return false }
        if !chipIDs.isEmpty, !chipIDs.contains(chipID) { return false }
        return variant.map { $0 == found } ?? true
    }

    /// Every STM32 name a rule may use. ST's line names match ST's own silicon only (a clone answers
    /// the same chip ids, and differs in what its controller does); a family name matches any chip of
    /// the family, clones included; a clone's name matches that clone.
    public static let all: [STM32Line] = {
        let performance: Set<UInt16> = [0x412, 0x410, 0x414, 0x430]
        let genuine: [STM32Line] = [
            STM32Line(name: "stm32f103", family: .f1, chipIDs: performance, variant: STM32Variant.stF1.id),
            STM32Line(name: "stm32f101", family: .f1, chipIDs: performance, variant: STM32Variant.stF1.id),
            STM32Line(name: "stm32f102", family: .f1, chipIDs: [0x412, 0x410], variant: STM32Variant.stF1.id),
            STM32Line(name: "stm32f105", family: .f1, chipIDs: [0x418], variant: STM32Variant.stF1.id),
            STM32Line(name: "stm32f107", family: .f1, chipIDs: [0x418], variant: STM32Variant.stF1.id),
            STM32Line(name: "stm32f100", family: .f1, chipIDs: [0x420, 0x428], variant: STM32Variant.stF1.id),
            STM32Line(name: "stm32f401", family: .f4, chipIDs: [0x423, 0x433], variant: STM32Variant.stF4.id),
            STM32Line(name: "stm32f411", family: .f4, chipIDs: [0x431], variant: STM32Variant.stF4.id),
        ]
        let clones = STM32Variant.namedClones.map {
            STM32Line(name: $0.id, family: $0.family, chipIDs: [], variant: $0.id)
        }
        let families = STM32Family.ID.allCases.map { STM32Line(name: $0.rawValue, family: $0, chipIDs: [], variant: nil) }
        return genuine + clones + families
    }()

    /// The line a rule names, by its lower-case name.
    public static func named(_ name: String) -> STM32Line? { all.first { $0.name == name } }
}

/// An STM32 chip line (a density line of a family), identified by the DEV_ID field of DBGMCU_IDCODE.
public struct STM32Chip: Hashable, Sendable, CustomStringConvertible {
    /// DEV_ID, e.g. 0x410 for the F1 medium density line.
    public let chipID: UInt16
    public let name: String
    public let family: STM32Family.ID
    /// The largest flash the line has; the chip's own size comes from the flash size register.
    public let maximumFlash: Int
    public let geometry: FlashGeometry
    public let sram: Int

    /// Where flash starts on every STM32, and where a bootloader binary is written.
    public static let flashBase: UInt32 = 0x0800_0000
    /// SRAM base, where a flash loader runs.
    public static let sramBase: UInt32 = 0x2000_0000

    /// The page size of a paged flash (nil for sectors).
    public var pageSize: Int? { geometry.pageSize }

    public var description: String { "\(name) (chip id \(formatHex(UInt32(chipID), width: 3)))" }
}
