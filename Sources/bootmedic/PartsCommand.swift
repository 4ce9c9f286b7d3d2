import ArgumentParser
import Parts
import Rules

struct PartsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "parts", abstract: "List the parts bootmedic knows, or show one.")

    @Argument(help: "A part name (atmega32u4, m32u4, stm32f103); all parts when omitted.")
    var name: String?

    @OptionGroup var output: OutputOptions

    /// One entry of `parts --json`, a flat array: the AVR parts (`"family": "avr"`), then the STM32 chip lines.
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

    struct STM32Report: Encodable {
        let chipID: UInt16; let name: String; let family: String; let maximumFlash: Int; let pageSize: Int?; let sram: Int
    }

    func run() throws {
        var avr = PartCatalog.avrParts
        var stm32 = PartCatalog.stm32Chips
        if let name {
            switch PartCatalog.part(named: name) {
            case let .avr(part)?: avr = [part]; stm32 = []
            case .stm32?: avr = []
            case nil:
                throw fail("unknown part '\(name)'\(suggestion(for: name, among: PartCatalog.allNames)); `bootmedic parts` lists the \(PartCatalog.allNames.count) names bootmedic knows")
            }
        }
        if output.json {
            struct Entry: Encodable {
                let avr: AVRReport?; let stm32: STM32Report?
                func encode(to encoder: Encoder) throws { try avr?.encode(to: encoder); try stm32?.encode(to: encoder) }
            }
            try printJSON(avr.map { Entry(avr: report($0), stm32: nil) } + stm32.map {
                Entry(avr: nil, stm32: STM32Report(chipID: $0.chipID, name: $0.name, family: $0.family.rawValue, maximumFlash: $0.maximumFlash,
                                                   pageSize: $0.pageSize, sram: $0.sram))
            })
            return
        }
        if name == nil {
            for part in avr {
                let notes = part.restoreRefusal != nil ? "  (listed only: AT90S-era instructions)" : (part.hasNamedFuses ? "  named fuses" : "")
                print("\(part.id.padding(14)) \(part.avrdudeID.padding(8)) \(part.signature)  flash \(kibibytes(part.flash.size))/\(part.flash.pageSize) B pages  EEPROM \(part.eeprom.size) B  fuses \(fuseNames(part))\(notes)")
            }
            for chip in stm32 { print(hex(UInt64(chip.chipID), width: 3).padding(14) + " " + summary(of: chip)) }
            return
        }
        for part in avr { describe(part) }
        for chip in stm32 { print(hex(UInt64(chip.chipID), width: 3) + " " + summary(of: chip)) }
    }

    private func summary(of chip: STM32Chip) -> String {
        "\(chip.name): flash up to \(chip.maximumFlash / 1024) KiB in \(chip.pageSize.map { "\($0) B pages" } ?? chip.geometry.description), SRAM \(chip.sram / 1024) KiB"
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
