import ArgumentParser
import Parts

struct PartsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "parts", abstract: "List the parts bootmedic knows, or show one.")

    @Argument(help: "A part name (atmega32u4, m32u4, stm32f103); all parts when omitted.")
    var name: String?

    @OptionGroup var output: OutputOptions

    struct AVRReport: Encodable {
        struct Fuse: Encodable {
            let byte: String; let implementedMask: UInt8; let factoryDefault: UInt8
            let fields: [String: UInt8]
        }
        struct Boot: Encodable { let bootsz: UInt8; let start: UInt32; let bytes: Int }
        let family = "avr"
        let id: String; let name: String; let avrdudeID: String; let signature: String
        let flashSize: Int; let flashPageSize: Int; let eepromSize: Int; let eepromPageSize: Int
        let fuses: [Fuse]; let lockMask: UInt8; let bootSections: [Boot]
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
            case nil: throw fail("unknown part '\(name)'; bootmedic knows \(PartCatalog.allNames.joined(separator: ", "))")
            }
        }
        if output.json {
            struct Both: Encodable { let avr: [AVRReport]; let stm32: [STM32Report] }
            try printJSON(Both(avr: avr.map(report), stm32: stm32.map {
                STM32Report(chipID: $0.chipID, name: $0.name, family: $0.family.rawValue, maximumFlash: $0.maximumFlash, pageSize: $0.pageSize, sram: $0.sram)
            }))
            return
        }
        if name == nil {
            for part in avr {
                print("\(part.id.padding(12)) \(part.name.padding(12)) \(part.signature)  flash \(part.flash.size / 1024) KiB/\(part.flash.pageSize) B pages  EEPROM \(part.eeprom.size) B  fuses \(part.fuseBytes.map { $0.byte.rawValue }.joined(separator: "/"))")
            }
            for chip in stm32 {
                print("\(hex(UInt64(chip.chipID), width: 3).padding(12)) \(chip.name): flash up to \(chip.maximumFlash / 1024) KiB in \(chip.pageSize.map { "\($0) B pages" } ?? chip.geometry.description), SRAM \(chip.sram / 1024) KiB")
            }
            return
        }
        for part in avr { describe(part) }
        for chip in stm32 {
            print("\(hex(UInt64(chip.chipID), width: 3)) \(chip.name): flash up to \(chip.maximumFlash / 1024) KiB in \(chip.pageSize.map { "\($0) B pages" } ?? chip.geometry.description), SRAM \(chip.sram / 1024) KiB")
        }
    }

    private func report(_ part: AVRPart) -> AVRReport {
        AVRReport(
            id: part.id, name: part.name, avrdudeID: part.avrdudeID, signature: part.signature.description,
            flashSize: part.flash.size, flashPageSize: part.flash.pageSize, eepromSize: part.eeprom.size, eepromPageSize: part.eeprom.pageSize,
            fuses: part.fuseBytes.map { layout in
                .init(byte: layout.byte.rawValue, implementedMask: layout.implementedMask, factoryDefault: layout.factoryDefault,
                      fields: Dictionary(uniqueKeysWithValues: layout.fields.map { ($0.name, $0.mask) }))
            },
            lockMask: part.lock.implementedMask,
            bootSections: part.bootSections.map { .init(bootsz: $0.bootsz, start: $0.start, bytes: $0.size) },
            waitMicroseconds: ["flashPage": part.times.flashPageWrite, "eeprom": part.times.eepromWrite,
                               "chipErase": part.times.chipErase, "fuse": part.times.fuseWrite])
    }

    private func describe(_ part: AVRPart) {
        print("\(part.name) (\(part.id), avrdude -p \(part.avrdudeID))")
        print("signature: \(part.signature)")
        print("flash: \(part.flash.size) bytes in \(part.flash.pageCount) pages of \(part.flash.pageSize)")
        print("EEPROM: \(part.eeprom.size) bytes, \(part.eeprom.pageSize)-byte pages")
        for layout in part.fuseBytes {
            let fields = layout.fields.map { "\($0.name)=\(hex(UInt64($0.mask), width: 2))" }.joined(separator: " ")
            print("\(layout.byte.rawValue) fuse: factory \(hex(UInt64(layout.factoryDefault), width: 2)), implemented bits \(hex(UInt64(layout.implementedMask), width: 2)): \(fields)")
        }
        print("lock: implemented bits \(hex(UInt64(part.lock.implementedMask), width: 2))")
        print("boot sections: " + part.bootSections.map { "\($0.size) B at \(hex(UInt64($0.start)))" }.joined(separator: ", "))
        print("factory fuses decoded:")
        for line in part.describe(part.factoryFuses).lines.dropFirst() { print("  \(line)") }
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
