/// What an STM32 or a chip claiming to be one answers over SWD: the values that tell its maker apart.
public struct STM32Identity: Hashable, Sendable {
    /// The SW-DP IDCODE (DPIDR): 0x1BA01477 on ST's Cortex-M3, 0x2BA01477 on its Cortex-M4 and on many clones.
    public let debugPortIDCode: UInt32
    /// The core's CPUID (0xE000ED00): implementer, part (0xC23 Cortex-M3, 0xC24 Cortex-M4), variant, revision.
    public let cpuID: UInt32
    /// The JEP106 designer in the ROM table's peripheral ID registers (continuation count << 8 | code);
    /// nil when the ROM table could not be read.
    public let designer: UInt16?
    /// DEV_ID of DBGMCU_IDCODE.
    public let chipID: UInt16

    public init(debugPortIDCode: UInt32, cpuID: UInt32, designer: UInt16?, chipID: UInt16) {
        self.debugPortIDCode = debugPortIDCode
        self.cpuID = cpuID
        self.designer = designer
        self.chipID = chipID
    }

    /// "DPIDR 0x2BA01477, CPUID 0x412FC231, ROM table designer 0x020": what `probe` prints, so a chip
    /// the table below does not know yet can be added from a real bench.
    public var description: String {
        String(cFormat: "DPIDR 0x%08X, CPUID 0x%08X, ROM table designer ", debugPortIDCode, cpuID)
            + (designer.map { String(cFormat: "0x%03X", $0) } ?? "unreadable")
    }
}

/// Whose silicon an STM32-compatible chip is, how it is recognised, and how its flash differs from ST's.
///
/// Clones answer ST's chip ids (DEV_ID 0x410 on a "Bluepill") and are told apart by the debug port's
/// IDCODE, the core's CPUID and the JEP106 designer code in the ROM table. The table is data: a chip
/// that `probe` shows with values no entry has is added here.
public struct STM32Variant: Hashable, Sendable, Identifiable {
    /// The part name a rule uses: "gd32f103"; ST's own silicon is "st-stm32f1".
    public let id: String
    /// "GD32F103"
    public let name: String
    public let maker: String
    public let family: STM32Family.ID
    public let isGenuine: Bool
    public let recognition: Recognition
    public let flash: FlashBehaviour
    /// Where the facts come from.
    public let sources: String

    /// The values a chip must show; an empty set accepts any value.
    public struct Recognition: Hashable, Sendable {
        public let designers: Set<UInt16>
        public let debugPortIDCodes: Set<UInt32>
        public let cpuIDs: Set<UInt32>

        public func matches(_ identity: STM32Identity) -> Bool {
            (designers.isEmpty || identity.designer.map(designers.contains) == true)
                && (debugPortIDCodes.isEmpty || debugPortIDCodes.contains(identity.debugPortIDCode))
                && (cpuIDs.isEmpty || cpuIDs.contains(identity.cpuID))
        }
    }

    /// How programming this maker's chips differs from the family's description.
    public struct FlashBehaviour: Hashable, Sendable {
        /// Page sizes that differ from ST's line of the same DEV_ID.
        public let pageSizes: [UInt16: Int]
        /// The access widths (bytes) the controller programs with, preferred first.
        public let programWidths: [Int]
        /// Worst-case erase of one unit by its size in bytes (the datasheet's maximum).
        public let unitEraseMilliseconds: [Int: Int]
        /// Worst-case mass erase (what removing read protection starts).
        public let massEraseMilliseconds: Int
        /// Worst-case programming of one access.
        public let programMicroseconds: Int

        /// The bound for erasing a unit of `size` bytes: the datasheet's figure for it, else the largest known.
        public func eraseMilliseconds(unitSize size: Int) -> Int {
            unitEraseMilliseconds[size] ?? unitEraseMilliseconds.values.max() ?? massEraseMilliseconds
        }
    }

    /// The geometry this maker's chip of `chip`'s line has.
    public func geometry(of chip: STM32Chip) -> FlashGeometry {
        flash.pageSizes[chip.chipID].map { .pages(size: $0) } ?? chip.geometry
    }

    // MARK: The table

    /// Every variant, in the order recognition tries them: the clones with a mark of their own first,
    /// then ST's silicon, then a catch-all per family.
    public static let all: [STM32Variant] = namedClones + [stF1, stF4, unknownF1Clone, unknownF4Clone]

    /// The clones a rule can name.
    public static let namedClones: [STM32Variant] = [gd32f103, cs32f103, cks32f103, apm32f103]

    /// The variant `identity` shows for a chip of `family`.
    public static func recognise(_ identity: STM32Identity, family: STM32Family.ID) -> STM32Variant {
        all.first { $0.family == family && $0.recognition.matches(identity) }!
    }

    public static func variant(id: String) -> STM32Variant? { all.first { $0.id == id } }

    /// STM32F1 programming as ST documents it: half-words, 1 or 2 KiB pages.
    static let stF1Flash = FlashBehaviour(pageSizes: [:], programWidths: [2], unitEraseMilliseconds: [1024: 40, 2048: 40],
                                          massEraseMilliseconds: 40, programMicroseconds: 70)

    /// ST's STM32F1 silicon: SW-DP 0x1BA01477 (RM0008 §31.8.3), Cortex-M3 r1p1 (CPUID 0x411FC231, PM0056
    /// §4.3.1), ST's JEP106 code 0x20 in the ROM table. Timing: STM32F103x8/B datasheet, "Flash memory
    /// characteristics" (tPROG ≤ 70 µs, tERASE and tME ≤ 40 ms).
    public static let stF1 = STM32Variant(
        id: "st-stm32f1", name: "STM32F1", maker: "STMicroelectronics", family: .f1, isGenuine: true,
        recognition: Recognition(designers: [0x020], debugPortIDCodes: [0x1BA0_1477], cpuIDs: [0x411F_C231]),
        flash: stF1Flash, sources: "RM0008, PM0056, PM0075, STM32F103x8/B datasheet")

    /// ST's STM32F401/F411: SW-DP 0x2BA01477 (RM0368 §23.6.3), Cortex-M4 r0p1 (CPUID 0x410FC241), ST's
    /// JEP106 code. Timing: STM32F411xC/E datasheet, "Flash memory programming" at x32 parallelism
    /// (word ≤ 100 µs; 16/64/128 KiB sectors ≤ 500/1100/2000 ms; mass erase ≤ 16 s).
    public static let stF4 = STM32Variant(
        id: "st-stm32f4", name: "STM32F4", maker: "STMicroelectronics", family: .f4, isGenuine: true,
        recognition: Recognition(designers: [0x020], debugPortIDCodes: [0x2BA0_1477], cpuIDs: [0x410F_C241]),
        flash: FlashBehaviour(pageSizes: [:], programWidths: [4, 2, 1], unitEraseMilliseconds: [16384: 500, 65536: 1100, 131_072: 2000],
                              massEraseMilliseconds: 16000, programMicroseconds: 100),
        sources: "RM0368, STM32F401/F411 datasheets")

    /// GigaDevice GD32F103: its own JEP106 code in the ROM table (0x751: bank 8, 0x51). Its flash
    /// controller (FMC, GD32F10x User Manual §2.3) takes 32-bit word programming, and its pages are 1 KiB
    /// up to 512 KiB of flash, where ST's high-density line has 2 KiB; page and mass erase take longer
    /// than ST's, so the bounds here are generous.
    public static let gd32f103 = STM32Variant(
        id: "gd32f103", name: "GD32F103", maker: "GigaDevice", family: .f1, isGenuine: false,
        recognition: Recognition(designers: [0x751], debugPortIDCodes: [], cpuIDs: []),
        flash: FlashBehaviour(pageSizes: [0x414: 1024], programWidths: [4, 2], unitEraseMilliseconds: [1024: 300, 2048: 300],
                              massEraseMilliseconds: 4000, programMicroseconds: 400),
        sources: "GD32F10x User Manual (FMC), JEP106 (GigaDevice), Black Magic Debug's gd32f1 probe")

    /// CS32F103 (China Key System's successor parts): a JEP106 code of 0x555 in the ROM table, which the
    /// standard does not assign (Black Magic Debug treats it as an STM32F1 clone's mark), and SW-DP
    /// 0x2BA01477, which openocd's stm32f1x.cfg rejects unless CPUTAPID is given. Programs as ST's.
    public static let cs32f103 = STM32Variant(
        id: "cs32f103", name: "CS32F103", maker: "CKS/CS", family: .f1, isGenuine: false,
        recognition: Recognition(designers: [0x555], debugPortIDCodes: [], cpuIDs: []),
        flash: stF1Flash, sources: "Black Magic Debug's JEP106 errata for STM32F1 clones; openocd users' reports of DPIDR 0x2BA01477")

    /// CKS32F103: ST's JEP106 code, but the SW-DP of a newer core (0x2BA01477) beside an F1 chip id.
    /// Programs as ST's (half-words, 1 KiB pages).
    public static let cks32f103 = STM32Variant(
        id: "cks32f103", name: "CKS32F103", maker: "CKS", family: .f1, isGenuine: false,
        recognition: Recognition(designers: [0x020], debugPortIDCodes: [0x2BA0_1477], cpuIDs: []),
        flash: stF1Flash, sources: "users' reports (openocd: UNEXPECTED idcode 0x2ba01477 on CKS32F103C8T6)")

    /// Geehy APM32F103: ST's SW-DP IDCODE, but a Cortex-M3 r2p1 core (CPUID 0x412FC231) where ST's F1 has
    /// r1p1. Programs as ST's (half-words, 1 KiB pages to 128 KiB).
    public static let apm32f103 = STM32Variant(
        id: "apm32f103", name: "APM32F103", maker: "Geehy", family: .f1, isGenuine: false,
        recognition: Recognition(designers: [], debugPortIDCodes: [0x1BA0_1477], cpuIDs: [0x412F_C231]),
        flash: stF1Flash, sources: "APM32F103 reference manual (Cortex-M3 r2p1); users' reports")

    /// A chip under an F1 chip id that none of the above describes: programmed as ST documents the F1.
    public static let unknownF1Clone = STM32Variant(
        id: "stm32f1-compatible", name: "STM32F1-compatible", maker: "unknown", family: .f1, isGenuine: false,
        recognition: Recognition(designers: [], debugPortIDCodes: [], cpuIDs: []), flash: stF1Flash, sources: "")

    /// A chip under an F4 chip id that is not ST's: programmed as RM0368 describes.
    public static let unknownF4Clone = STM32Variant(
        id: "stm32f4-compatible", name: "STM32F4-compatible", maker: "unknown", family: .f4, isGenuine: false,
        recognition: Recognition(designers: [], debugPortIDCodes: [], cpuIDs: []), flash: stF4.flash, sources: "")
}
