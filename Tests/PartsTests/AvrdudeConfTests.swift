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

    /// A memory's value with inheritance.
    func memory(_ name: String, _ key: String, of id: String) -> String? {
        guard let block = parts[id] else { return nil }
        return block.memories[name]?[key] ?? block.parent.flatMap { memory(name, key, of: $0) }
    }

    func hasMemory(_ name: String, of id: String) -> Bool {
        guard let block = parts[id] else { return false }
        return block.memories[name] != nil || (block.parent.map { hasMemory(name, of: $0) } ?? false)
    }

    static func integer(_ text: String?) -> Int? {
        guard let text else { return nil }
        return text.hasPrefix("0x") ? Int(text.dropFirst(2), radix: 16) : Int(text)
    }

    /// The implemented-bit mask from a write instruction: the data byte's `i` bits.
    static func writeMask(_ pattern: String?) -> UInt8? {
        guard let pattern else { return nil }
        let bits = pattern.filter { "01xaio".contains($0) }.suffix(8)
        guard bits.count == 8 else { return nil }
        return bits.reduce(UInt8(0)) { $0 << 1 | ($1 == "i" ? 1 : 0) }
    }
}

@Suite struct AvrdudeConfTests {
    static let conf: AvrdudeConf? = try? AvrdudeConf()

    @Test func debiansAvrdudeConfIsInstalled() {
        #expect(Self.conf != nil, "/etc/avrdude.conf missing: run scripts/install-deps.sh")
        #expect((Self.conf?.parts.count ?? 0) > 100)
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
        #expect(AvrdudeConf.integer(conf.memory("flash", "page_size", of: id)) == part.flash.pageSize)
        #expect(AvrdudeConf.integer(conf.memory("eeprom", "size", of: id)) == part.eeprom.size)
        #expect(AvrdudeConf.integer(conf.memory("eeprom", "page_size", of: id)) == part.eeprom.pageSize)

        for byte in FuseByte.allCases {
            let layout = part.layout(of: byte)
            #expect(conf.hasMemory(byte.avrdudeName, of: id) == (layout != nil), "\(byte.avrdudeName) presence")
            if let layout {
                #expect(AvrdudeConf.writeMask(conf.memory(byte.avrdudeName, "write", of: id)) == layout.implementedMask, "\(byte.avrdudeName) mask")
                #expect(AvrdudeConf.integer(conf.memory(byte.avrdudeName, "min_write_delay", of: id)) == part.times.fuseWrite)
            }
        }
        #expect(AvrdudeConf.writeMask(conf.memory("lock", "write", of: id)) == part.lock.implementedMask)

        #expect(AvrdudeConf.integer(conf.value("boot_section_size", of: id)) == part.smallestBootSection)
        #expect(AvrdudeConf.integer(conf.value("n_boot_sections", of: id)) == part.bootSections.count)
        #expect(AvrdudeConf.integer(conf.value("chip_erase_delay", of: id)) == part.times.chipErase)
        #expect(AvrdudeConf.integer(conf.memory("flash", "min_write_delay", of: id)) == part.times.flashPageWrite)
        #expect(AvrdudeConf.integer(conf.memory("eeprom", "min_write_delay", of: id)) == part.times.eepromWrite)
    }
}
