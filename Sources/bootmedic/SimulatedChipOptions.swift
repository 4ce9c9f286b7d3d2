import ArgumentParser
import FirmwareImage
import Parts
import Rules

/// The simulated chip `rehearse` and `simulate` start from.
struct SimulatedChipOptions: ParsableArguments {
    @Option(help: "The simulated chip, e.g. atmega32u4.")
    var part: String

    @Option(help: "Start the chip with this flash content: a raw binary from address 0, or an Intel HEX file (.hex) at its addresses.")
    var initialFlash: String?

    @Option(help: "Start the chip with this EEPROM content (raw binary).")
    var initialEeprom: String?

    @Option(help: "Start the chip with these fuses, LOW:HIGH[:EXTENDED] in hex (default: the part's factory fuses).")
    var initialFuses: String?

    /// The AVR part named by --part, or exits saying which parts exist or why the part is not simulated.
    func avrPart() throws -> AVRPart {
        guard case let .avr(avr)? = PartCatalog.part(named: part) else {
            throw fail("unknown AVR part '\(part)'\(suggestion(for: part, among: PartCatalog.avrParts.map(\.id))); `bootmedic parts` lists the \(PartCatalog.avrParts.count) AVR parts bootmedic knows")
        }
        if let refusal = avr.restoreRefusal { throw fail("\(refusal); there is no simulated \(avr.name) either") }
        return avr
    }

    /// The initial flash, EEPROM and fuses, each nil where not given.
    func contents() throws -> (flash: [UInt8]?, eeprom: [UInt8]?, fuses: FuseSet?) {
        (try initialFlash.map { try readFlashImage($0) }, try initialEeprom.map { try readBinary($0) }, try initialFuses.map { try parseFuses($0) })
    }

    /// A raw binary, or an Intel HEX file's bytes from address 0 to its end (0xFF between its records).
    private func readFlashImage(_ path: String) throws -> [UInt8] {
        guard path.lowercased().hasSuffix(".hex") else { return try readBinary(path) }
        do {
            let image = try FirmwareFile(path: path).image
            return image.bytes(in: 0..<UInt32(image.span?.upperBound ?? 0))
        } catch { throw fail("cannot read \(path): \(error)") }
    }
}
