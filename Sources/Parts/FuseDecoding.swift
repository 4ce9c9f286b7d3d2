/// Where the chip starts executing after reset.
public enum ResetVector: Hashable, Sendable, CustomStringConvertible {
    /// BOOTRST programmed: reset jumps to the boot section start.
    case bootSection(UInt32)
    /// BOOTRST unprogrammed but HWBE programmed: the application starts at 0x0000, the bootloader
    /// when the HWB pin is held low during reset.
    case applicationOrHardwareBoot(UInt32)
    /// BOOTRST unprogrammed, no hardware boot: always 0x0000.
    case application

    public var description: String {
        switch self {
        case let .bootSection(start):
            return "reset jumps to the bootloader at \(formatHex(start, width: 4)) (BOOTRST programmed)"
        case let .applicationOrHardwareBoot(start):
            return "reset starts the application at 0x0000; the bootloader at \(formatHex(start, width: 4)) runs when HWB is held low at reset (HWBE programmed)"
        case .application:
            return "reset starts the application at 0x0000 (BOOTRST unprogrammed)"
        }
    }
}

/// One named fuse field with its value, for people and scripts.
public struct DecodedField: Hashable, Sendable, Codable {
    public let name: String
    public let byte: FuseByte
    /// The field's bits, most significant first ("00" for BOOTSZ).
    public let bits: String
    /// For one-bit fields: programmed (0) or not.
    public let programmed: Bool?
    public let meaning: String
}

/// A fuse set in words a technician understands.
public struct FuseDescription: Sendable {
    public let part: AVRPart
    public let fuses: FuseSet
    public let clock: ClockSetting?
    public let bootSection: BootSection?
    public let resetVector: ResetVector?
    public let fields: [DecodedField]

    /// The one-bit features that are programmed (enabled), e.g. "SPIEN: serial (ISP) programming enabled".
    public var enabled: [DecodedField] { fields.filter { $0.programmed == true } }

    /// A few lines for a terminal.
    public var lines: [String] {
        var out = ["\(part.name) fuses \(fuses)"]
        if let clock { out.append("clock: \(clock)") }
        if let bootSection { out.append("boot section: \(bootSection)") }
        if let resetVector { out.append("reset: \(resetVector)") }
        guard part.hasNamedFuses else {
            out.append("meaning: bootmedic has no named fuse semantics for \(part.name); its datasheet's \"Fuse Bits\" tables tell what the bits do")
            return out
        }
        if let level = fields.first(where: { $0.name == "BODLEVEL" }) { out.append("brown-out: BODLEVEL=\(level.bits)") }
        out.append("enabled: " + (enabled.isEmpty ? "nothing" : enabled.map(\.name).joined(separator: ", ")))
        for field in enabled { out.append("  \(field.name): \(field.meaning)") }
        return out
    }
}

extension AVRPart {
    /// Decodes the bytes of `fuses` that this part has.
    public func describe(_ fuses: FuseSet) -> FuseDescription {
        var fields: [DecodedField] = []
        for layout in fuseBytes {
            guard let value = fuses[layout.byte] else { continue }
            for field in layout.fields {
                fields.append(DecodedField(
                    name: field.name, byte: field.byte, bits: bits(field.value(in: value), field.mask.nonzeroBitCount),
                    programmed: field.isSingleBit ? field.isProgrammed(in: value) : nil, meaning: field.meaning))
            }
        }
        return FuseDescription(part: self, fuses: fuses, clock: fuses.low.flatMap { clock(low: $0) }, bootSection: bootSection(in: fuses),
                               resetVector: resetVector(fuses), fields: fields)
    }

    /// Where reset lands with `fuses`; nil when the byte holding BOOTRST is not given, or the part has no
    /// boot section (or no named semantics).
    public func resetVector(_ fuses: FuseSet) -> ResetVector? {
        guard let bootrst = field("BOOTRST"), let value = fuses[bootrst.byte], let section = bootSection(in: fuses) else { return nil }
        if bootrst.isProgrammed(in: value) { return .bootSection(section.start) }
        if let hwbe = field("HWBE"), let ext = fuses.extended, hwbe.isProgrammed(in: ext) {
            return .applicationOrHardwareBoot(section.start)
        }
        return .application
    }
}
