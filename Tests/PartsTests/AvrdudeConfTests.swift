import Foundation
import Parts
import Testing

/// A reading of Debian's /etc/avrdude.conf (avrdude 7.1): parts, their parents, and their memories.
struct AvrdudeConf {
    struct Block {
        var parent: String?
        var values: [String: String] = [:]
        var memories: [String: [String: String]] = [:]
    }

    var parts: [String: Block] = [:]

    init(path: String = "/etc/avrdude.conf") throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var current: Block?
        var memory: String?
        var pending = ""
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if raw.hasPrefix("part") {
                current = Block()
                if let quote = raw.range(of: "parent \"") {
                    current!.parent = String(raw[quote.upperBound...].prefix { $0 != "\"" })
                }
                continue
            }
            guard var block = current else { continue }
            defer { current = block }
            if raw.hasPrefix(";") {
                if let id = block.values["id"] { parts[id] = block }
                current = nil
                block = Block()
                continue
            }
            if trimmed.hasPrefix("memory \"") {
                memory = String(trimmed.dropFirst(8).prefix { $0 != "\"" })
                block.memories[memory!] = block.memories[memory!] ?? [:]
                continue
            }
            if trimmed == ";" { memory = nil; continue }
            pending += " " + trimmed
            guard pending.hasSuffix(";") else { continue }
            let statement = pending.dropLast().trimmingCharacters(in: .whitespaces)
            pending = ""
            guard let eq = statement.firstIndex(of: "=") else { continue }
            let key = statement[..<eq].trimmingCharacters(in: .whitespaces)
            let value = statement[statement.index(after: eq)...].trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "\"", with: "")
            if let memory { block.memories[memory]![key] = value } else { block.values[key] = value }
        }
    }

    /// A part's value with inheritance from its parents.
    func value(_ key: String, of id: String) -> String? {
        guard let block = parts[id] else { return nil }
        return block.values[key] ?? block.parent.flatMap { value(key, of: $0) }
    }

    /// A memory's value with inheritance; an instruction set to NULL is none.
    func memory(_ name: String, _ key: String, of id: String) -> String? {
        guard let block = parts[id] else { return nil }
        let value = block.memories[name]?[key] ?? block.parent.flatMap { memory(name, key, of: $0) }
        return value == "NULL" ? nil : value
    }

    /// The ids of the parts whose programming modes include ISP.
    var ispParts: Set<String> { Set(parts.keys.filter { value("prog_modes", of: $0)?.contains("PM_ISP") == true }) }

    func hasMemory(_ name: String, of id: String) -> Bool {
        guard let block = parts[id] else { return false }
        return block.memories[name] != nil || (block.parent.map { hasMemory(name, of: $0) } ?? false)
    }

    static func integer(_ text: String?) -> Int? {
        guard let text else { return nil }
        return text.hasPrefix("0x") ? Int(text.dropFirst(2), radix: 16) : Int(text)
    }

    /// The implemented-bit mask from a write instruction: the `i` bits of the byte that carries them
    /// (the data byte, or the second byte in the AT90S-era fuse and lock instructions).
    static func writeMask(_ pattern: String?) -> UInt8? {
        guard let pattern else { return nil }
        let bits = Array(pattern.filter { "01xaio".contains($0) })
        guard bits.count == 32 else { return nil }
        let bytes = stride(from: 0, to: 32, by: 8).map { bits[$0..<$0 + 8] }
        let data = bytes.last { $0.contains("i") } ?? bytes[3]
        return data.reduce(UInt8(0)) { $0 << 1 | ($1 == "i" ? 1 : 0) }
    }
}

@Suite struct AvrdudeConfTests {
    static let conf: AvrdudeConf? = try? AvrdudeConf()

    @Test func debiansAvrdudeConfIsInstalled() {
        #expect(Self.conf != nil, "/etc/avrdude.conf missing: run scripts/install-deps.sh")
        #expect((Self.conf?.parts.count ?? 0) > 100)
    }

    @Test func theCatalogHoldsEveryISPPartOfAvrdude() throws {
        let conf = try #require(Self.conf)
        #expect(Set(PartCatalog.avrParts.map(\.avrdudeID)) == conf.ispParts)
        #expect(PartCatalog.avrParts.count >= 163)
        #expect(Set(PartCatalog.avrParts.map(\.id)).count == PartCatalog.avrParts.count, "ids are unique")
    }

    @Test(arguments: PartCatalog.avrParts)
    func everyNumberAgreesWithAvrdude(_ part: AVRPart) throws {
        let conf = try #require(Self.conf)
        let id = part.avrdudeID
        #expect(conf.parts[id] != nil, "avrdude has no part \(id)")
        #expect(conf.value("desc", of: id) == part.name)

        let signature = try #require(conf.value("signature", of: id)).split(separator: " ").compactMap { UInt8($0.dropFirst(2), radix: 16) }
        #expect(signature == part.signature.bytes)

        #expect(AvrdudeConf.integer(conf.memory("flash", "size", of: id)) == part.flash.size)
        // avrdude's defaults where a part gives no value: pages of one byte, no boot section.
        #expect(AvrdudeConf.integer(conf.memory("flash", "page_size", of: id) ?? "1") == part.flash.pageSize)
        #expect(AvrdudeConf.integer(conf.memory("eeprom", "size", of: id)) == part.eeprom.size)
        #expect(AvrdudeConf.integer(conf.memory("eeprom", "page_size", of: id) ?? "1") == part.eeprom.pageSize)
        #expect((conf.memory("eeprom", "loadpage_lo", of: id) != nil) == part.eepromHasPageBuffer)

        for byte in FuseByte.allCases {
            let layout = part.layout(of: byte)
            #expect(conf.hasMemory(byte.avrdudeName, of: id) == (layout != nil), "\(byte.avrdudeName) presence")
            if let layout {
                #expect(AvrdudeConf.writeMask(conf.memory(byte.avrdudeName, "write", of: id)) == layout.implementedMask, "\(byte.avrdudeName) mask")
                #expect(AvrdudeConf.integer(conf.memory(byte.avrdudeName, "min_write_delay", of: id)) == part.times.fuseWrite)
            }
        }
        let paged = conf.memory("flash", "paged", of: id) == "yes" && conf.hasMemory("lfuse", of: id)
        switch part.instructionSet {
        case .paged:
            #expect(paged, "avrdude programs \(id) with the AT90S-era instructions")
        case let .legacy(fuseMask):
            #expect(!paged)
            #expect(conf.hasMemory("fuse", of: id))
            #expect(AvrdudeConf.writeMask(conf.memory("fuse", "write", of: id)) == fuseMask)
            #expect(part.restoreRefusal != nil)
        }
        #expect(AvrdudeConf.writeMask(conf.memory("lock", "write", of: id)) == part.lock.implementedMask)

        #expect(AvrdudeConf.integer(conf.value("boot_section_size", of: id) ?? "0") == part.smallestBootSection)
        #expect(AvrdudeConf.integer(conf.value("n_boot_sections", of: id) ?? "0") == part.bootSections.count)
        #expect(AvrdudeConf.integer(conf.value("chip_erase_delay", of: id)) == part.times.chipErase)
        #expect(AvrdudeConf.integer(conf.memory("flash", "min_write_delay", of: id)) == part.times.flashPageWrite)
        #expect(AvrdudeConf.integer(conf.memory("eeprom", "min_write_delay", of: id)) == part.times.eepromWrite)
    }

    /// The datasheet semantics sit on the bits avrdude says exist: each field inside its byte's implemented
    /// bits, no two fields sharing a bit, a factory value for every byte, and the fields the safety lint and
    /// the placement check rely on.
    @Test(arguments: PartCatalog.avrParts.filter(\.hasNamedFuses))
    func namedSemanticsFitTheImplementedBits(_ part: AVRPart) throws {
        for layout in part.fuseBytes {
            #expect(layout.factoryDefault != nil, "\(layout.byte) factory value")
            #expect(!layout.fields.isEmpty, "\(layout.byte) fields")
            var used: UInt8 = 0
            for field in layout.fields {
                #expect(field.mask & ~layout.implementedMask == 0, "\(field.name) outside the implemented bits")
                #expect(field.mask & used == 0, "\(field.name) overlaps another field")
                used |= field.mask
            }
        }
        for name in ["SPIEN", "CKSEL", "SUT"] { #expect(part.field(name) != nil, "\(name)") }
        #expect((part.field("BOOTSZ") != nil) == part.hasBootSection, "BOOTSZ where there is a boot section")
        #expect((part.field("BOOTRST") != nil) == part.hasBootSection)
        #expect(part.clock(low: part.factoryFuses.low!)?.source != .reserved)
    }

    /// The parts the bench sees most all have named semantics.
    @Test func theCommonPartsHaveNamedFuses() throws {
        let common = ["m48", "m48p", "m48pa", "m48pb", "m88", "m88p", "m88pa", "m88pb", "m168", "m168p", "m168pa", "m168pb",
                      "m328", "m328p", "m328pb", "m8a", "m16a", "m32a", "m644pa", "m1284p", "m1280", "m2560", "m8u2", "m16u2", "m32u2",
                      "m16u4", "m32u4", "usb646", "usb1286", "t13a", "t25", "t45", "t85", "t24", "t44", "t84", "t2313a", "t4313"]
        for id in common {
            let part = try #require(PartCatalog.avrParts.first { $0.avrdudeID == id }, "\(id)")
            #expect(part.hasNamedFuses, "\(id)")
        }
    }
}
