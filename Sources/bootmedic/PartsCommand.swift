import ArgumentParser
import Parts
import Rules

struct PartsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "parts", abstract: "List the parts bootmedic knows, or show one.")

    @Argument(help: "A part name (atmega32u4, m32u4, stm32f103, gd32f103); all parts when omitted.")
    var name: String?

    @OptionGroup var output: OutputOptions

    /// One entry of `parts --json`, a flat array: the AVR parts (`"family": "avr"`), then the STM32 part names.
    struct AVRReport: Encodable {
        struct Fuse: Encodable {
            let byte: String; let implementedMask: UInt8; let factoryDefault: UInt8?
            let fields: [String: UInt8]
        }
        struct Boot: Encodable { let bootsz: UInt8; let start: UInt32; let bytes: Int }
        let family = "avr"
        let id: String; let name: String; let avrdudeID: String; let signature: String
        let flashSize: Int; let flashPageSize: Int; let eepromSize: Int; let eepromPageSize: Int; let eepromPageBuffer: Bool
        let fuses: [Fuse]; let lockMask: UInt8; let bootSections: [Boot]
        /// Whether bootmedic decodes and lints this part's fuses (datasheet semantics), or only knows which bits exist.
        let namedFuses: Bool
        /// Whether bootmedic restores the part; `refusal` says why not.
        let restorable: Bool; let refusal: String?
        /// Worst-case self-timed waits, microseconds: tWD_FLASH, tWD_EEPROM, tWD_ERASE, tWD_FUSE.
        let waitMicroseconds: [String: Int]
    }

    /// An STM32 part name a rule can use: its family, whose silicon, how that is recognised, its chip lines.
    struct STM32Report: Encodable {
        struct Chip: Encodable {
            let chipID: UInt16; let name: String; let maximumFlash: Int; let pageSize: Int?; let sectorSizes: [Int]?; let sram: Int
        }
        struct Recognition: Encodable { let designers: [UInt16]; let debugPortIDCodes: [UInt32]; let cpuIDs: [UInt32] }
        let family: String
        let id: String
        /// The maker whose silicon the name stands for; nil: any maker (a family name).
        let maker: String?
        /// How that maker's chip is told from the others (empty lists: any value); nil for a family name.
        let recognition: Recognition?
        /// The access widths flash is programmed with (bytes), preferred first; nil for a family name.
        let programWidths: [Int]?
        let chips: [Chip]
    }

    func run() throws {
        var avr = PartCatalog.avrParts
        var stm32 = STM32Line.all
        if let name {
            switch PartCatalog.part(named: name) {
            case let .avr(part)?: avr = [part]; stm32 = []
            case let .stm32(line)?: avr = []; stm32 = [line]
            case nil:
                throw fail("unknown part '\(name)'\(suggestion(for: name, among: PartCatalog.allNames)); `bootmedic parts` lists the \(PartCatalog.allNames.count) names bootmedic knows")
            }
        }
        if output.json {
            struct Entry: Encodable {
                let avr: AVRReport?; let stm32: STM32Report?
                func encode(to encoder: Encoder) throws { try avr?.encode(to: encoder); try stm32?.encode(to: encoder) }
            }
            try printJSON(avr.map { Entry(avr: report($0), stm32: nil) } + stm32.map { Entry(avr: nil, stm32: report($0)) })
            return
        }
        if name == nil {
            for part in avr {
                let notes = part.restoreRefusal != nil ? "  (listed only: AT90S-era instructions)" : (part.hasNamedFuses ? "  named fuses" : "")
                print("\(part.id.padding(14)) \(part.avrdudeID.padding(8)) \(part.signature)  flash \(kibibytes(part.flash.size))/\(part.flash.pageSize) B pages  EEPROM \(part.eeprom.size) B  fuses \(fuseNames(part))\(notes)")
            }
            for line in stm32 { print(line.name.padding(14) + " " + summary(of: line)) }
            for chip in PartCatalog.stm32Chips { print(hex(UInt64(chip.chipID), width: 3).padding(14) + " " + summary(of: chip)) }
            return
        }
        for part in avr { describe(part) }
        for line in stm32 {
            print("\(line.name): \(summary(of: line))")
            if let variant = line.variant.flatMap(STM32Variant.variant(id:)), !variant.sources.isEmpty { print("facts: \(variant.sources)") }
            for chip in chips(of: line) { print(hex(UInt64(chip.chipID), width: 3) + " " + summary(of: chip, as: line)) }
        }
    }

    private func chips(of line: STM32Line) -> [STM32Chip] {
        STM32Family.family(line.family).chips.filter { line.chipIDs.isEmpty || line.chipIDs.contains($0.chipID) }
    }

    /// "STM32F1  GigaDevice GD32F103, any STM32F1 chip id; ROM table designer 0x751; programs in words"
    private func summary(of line: STM32Line) -> String {
        let family = STM32Family.family(line.family).name
        let ids = line.chipIDs.isEmpty ? "any \(family) chip id" : "chip ids " + chips(of: line).map { hex(UInt64($0.chipID), width: 3) }.joined(separator: "/")
        guard let variant = line.variant.flatMap(STM32Variant.variant(id:)) else { return "\(family.padding(8)) any maker (clones included), \(ids)" }
        let r = variant.recognition
        let marks = [r.designers.map { "ROM table designer " + hex(UInt64($0), width: 3) }, r.debugPortIDCodes.map { "DPIDR " + hex(UInt64($0), width: 8) },
                     r.cpuIDs.map { "CPUID " + hex(UInt64($0), width: 8) }].flatMap { $0 }.joined(separator: ", ")
        let who = variant.isGenuine ? variant.maker : "\(variant.maker) \(variant.name)"
        let widths = variant.flash.programWidths.map { ["", "bytes", "half-words", "", "words"][$0] }.joined(separator: " or ")
        return "\(family.padding(8)) \(who), \(ids); \(marks); programs in \(widths)"
    }

    private func summary(of chip: STM32Chip, as line: STM32Line? = nil) -> String {
        let geometry = line?.variant.flatMap(STM32Variant.variant(id:))?.geometry(of: chip) ?? chip.geometry
        return "\(chip.name): flash up to \(chip.maximumFlash / 1024) KiB in \(geometry.pageSize.map { "\($0) B pages" } ?? geometry.description), SRAM \(chip.sram / 1024) KiB"
    }

    private func report(_ line: STM32Line) -> STM32Report {
        let variant = line.variant.flatMap(STM32Variant.variant(id:))
        return STM32Report(
            family: line.family.rawValue, id: line.name, maker: variant?.maker,
            recognition: variant.map { .init(designers: $0.recognition.designers.sorted(), debugPortIDCodes: $0.recognition.debugPortIDCodes.sorted(),
                                             cpuIDs: $0.recognition.cpuIDs.sorted()) },
            programWidths: variant?.flash.programWidths,
            chips: chips(of: line).map { chip in
                let geometry = variant?.geometry(of: chip) ?? chip.geometry
                return .init(chipID: chip.chipID, name: chip.name, maximumFlash: chip.maximumFlash, pageSize: geometry.pageSize,
                             sectorSizes: geometry.sectorSizes.isEmpty ? nil : geometry.sectorSizes, sram: chip.sram)
            })
    }

    private func kibibytes(_ bytes: Int) -> String { bytes >= 1024 ? "\(bytes / 1024) KiB" : "\(bytes) B" }

    private func fuseNames(_ part: AVRPart) -> String {
        if case .legacy = part.instructionSet { return "fuse" }
        return part.fuseBytes.map { $0.byte.rawValue }.joined(separator: "/")
    }

    private func report(_ part: AVRPart) -> AVRReport {
        var fuses = part.fuseBytes.map { layout in
            AVRReport.Fuse(byte: layout.byte.rawValue, implementedMask: layout.implementedMask, factoryDefault: layout.factoryDefault,
                           fields: Dictionary(uniqueKeysWithValues: layout.fields.map { ($0.name, $0.mask) }))
        }
        if case let .legacy(fuseMask?) = part.instructionSet {
            fuses.append(AVRReport.Fuse(byte: "fuse", implementedMask: fuseMask, factoryDefault: nil, fields: [:]))
        }
        return AVRReport(
            id: part.id, name: part.name, avrdudeID: part.avrdudeID, signature: part.signature.description,
            flashSize: part.flash.size, flashPageSize: part.flash.pageSize, eepromSize: part.eeprom.size, eepromPageSize: part.eeprom.pageSize,
            eepromPageBuffer: part.eepromHasPageBuffer, fuses: fuses, lockMask: part.lock.implementedMask,
            bootSections: part.bootSections.map { .init(bootsz: $0.bootsz, start: $0.start, bytes: $0.size) },
            namedFuses: part.hasNamedFuses, restorable: part.restoreRefusal == nil, refusal: part.restoreRefusal,
            waitMicroseconds: ["flashPage": part.times.flashPageWrite, "eeprom": part.times.eepromWrite,
                               "chipErase": part.times.chipErase, "fuse": part.times.fuseWrite])
    }

    private func describe(_ part: AVRPart) {
        print("\(part.name) (\(part.id), avrdude -p \(part.avrdudeID))")
        print("signature: \(part.signature)")
        print("flash: \(part.flash.size) bytes in \(part.flash.pageCount) pages of \(part.flash.pageSize)")
        print("EEPROM: \(part.eeprom.size) bytes, " + (part.eepromHasPageBuffer ? "\(part.eeprom.pageSize)-byte pages" : "written byte by byte"))
        for layout in part.fuseBytes {
            let fields = layout.fields.map { "\($0.name)=\(hex(UInt64($0.mask), width: 2))" }.joined(separator: " ")
            let factory = layout.factoryDefault.map { "factory \(hex(UInt64($0), width: 2)), " } ?? ""
            print("\(layout.byte.rawValue) fuse: \(factory)implemented bits \(hex(UInt64(layout.implementedMask), width: 2))" + (fields.isEmpty ? "" : ": \(fields)"))
        }
        if case let .legacy(fuseMask) = part.instructionSet {
            print("fuse: " + (fuseMask.map { "implemented bits \(hex(UInt64($0), width: 2))" } ?? "not writable over ISP"))
        }
        print("lock: implemented bits \(hex(UInt64(part.lock.implementedMask), width: 2))")
        print("boot sections: " + (part.bootSections.isEmpty ? "none (a bootloader sits at an address of its own)"
                                    : part.bootSections.map { "\($0.size) B at \(hex(UInt64($0.start)))" }.joined(separator: ", ")))
        if let refusal = part.restoreRefusal { print("restore: refused: \(refusal)") }
        guard part.hasNamedFuses else {
            print("fuse semantics: none named; a rule that writes fuses needs allow_unsafe_fuses = true")
            return
        }
        print("factory fuses decoded:")
        for line in part.describe(part.factoryFuses).lines.dropFirst() { print("  \(line)") }
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
