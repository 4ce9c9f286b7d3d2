/// The fuse bytes an AVR may have.
public enum FuseByte: String, CaseIterable, Sendable, Codable, Comparable {
    case low, high, extended

    /// The name avrdude gives the memory ("lfuse", "hfuse", "efuse").
    public var avrdudeName: String {
        switch self {
        case .low: return "lfuse"
        case .high: return "hfuse"
        case .extended: return "efuse"
        }
    }

    public static func < (a: FuseByte, b: FuseByte) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// A named field of one fuse byte: a single bit (SPIEN) or a run of bits (CKSEL3..0).
/// AVR fuse bits are active low: 0 means *programmed*.
public struct FuseField: Hashable, Sendable {
    public let name: String
    public let byte: FuseByte
    /// The bits of the byte this field occupies (contiguous).
    public let mask: UInt8
    /// What the field does, for people.
    public let meaning: String

    public init(_ name: String, _ byte: FuseByte, _ mask: UInt8, _ meaning: String) {
        self.name = name
        self.byte = byte
        self.mask = mask
        self.meaning = meaning
    }

    /// The field's value right-aligned (e.g. BOOTSZ as 0...3).
    public func value(in byteValue: UInt8) -> UInt8 { (byteValue & mask) >> UInt8(mask.trailingZeroBitCount) }

    /// For a one-bit field: true when the bit is 0, which AVRs call programmed.
    public func isProgrammed(in byteValue: UInt8) -> Bool { byteValue & mask == 0 }

    public var isSingleBit: Bool { mask.nonzeroBitCount == 1 }
}

/// One fuse byte of a part: which bits exist, what they are called, and the factory value.
public struct FuseByteLayout: Hashable, Sendable {
    public let byte: FuseByte
    /// Bits that exist; the others read back as anything (the seed's extended-fuse warning).
    public let implementedMask: UInt8
    /// The value the chip leaves the factory with; nil for a part without named semantics.
    public let factoryDefault: UInt8?
    /// The named fields; empty for a part without named semantics.
    public let fields: [FuseField]

    public init(_ byte: FuseByte, implemented: UInt8, factoryDefault: UInt8?, fields: [FuseField]) {
        self.byte = byte
        self.implementedMask = implemented
        self.factoryDefault = factoryDefault
        self.fields = fields
    }
}
