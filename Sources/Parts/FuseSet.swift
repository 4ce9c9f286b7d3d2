/// Fuse byte values, as a rule gives them or a chip reports them. A nil byte is one not given
/// (or, for a part, one it does not have).
public struct FuseSet: Hashable, Sendable, Codable, CustomStringConvertible {
    public var low: UInt8?
    public var high: UInt8?
    public var extended: UInt8?

    public init(low: UInt8? = nil, high: UInt8? = nil, extended: UInt8? = nil) {
        self.low = low
        self.high = high
        self.extended = extended
    }

    public subscript(byte: FuseByte) -> UInt8? {
        get {
            switch byte {
            case .low: return low
            case .high: return high
            case .extended: return extended
            }
        }
        set {
            switch byte {
            case .low: low = newValue
            case .high: high = newValue
            case .extended: extended = newValue
            }
        }
    }

    /// The bytes that are set, low first.
    public var givenBytes: [FuseByte] { FuseByte.allCases.filter { self[$0] != nil } }

    /// "L 0xFF, H 0xD8, E 0xFB"
    public var description: String {
        givenBytes.map { "\($0.rawValue.prefix(1).uppercased()) 0x\(formatHex(self[$0]!))" }.joined(separator: ", ")
    }
}

/// One fuse byte whose value differs from the expected one in a bit that exists.
public struct FuseMismatch: Hashable, Sendable, CustomStringConvertible {
    public let byte: FuseByte
    public let expected: UInt8
    public let actual: UInt8
    /// The implemented bits that differ.
    public let differingBits: UInt8

    public var description: String {
        "\(byte.rawValue) fuse is 0x\(formatHex(actual)), expected 0x\(formatHex(expected)) (bits 0x\(formatHex(differingBits)) differ)"
    }
}

extension AVRPart {
    /// The bytes of `expected` that `actual` does not match, comparing only the bits that exist on this
    /// part: an extended fuse read back as 0xCB matches 0xFB on an ATmega32U4, whose upper four bits
    /// are not implemented (the seed's readback warning).
    public func mismatches(expected: FuseSet, actual: FuseSet) -> [FuseMismatch] {
        fuseBytes.compactMap { layout in
            guard let want = expected[layout.byte] else { return nil }
            let got = actual[layout.byte] ?? ~want
            let differing = (want ^ got) & layout.implementedMask
            return differing == 0 ? nil : FuseMismatch(byte: layout.byte, expected: want, actual: got, differingBits: differing)
        }
    }

    /// True when every given byte of `expected` matches `actual` under the implemented-bit masks.
    public func fusesMatch(expected: FuseSet, actual: FuseSet) -> Bool { mismatches(expected: expected, actual: actual).isEmpty }

    /// `fuses` with unimplemented bits set to 1, the value a careful writer sends.
    public func normalized(_ fuses: FuseSet) -> FuseSet {
        var out = FuseSet()
        for layout in fuseBytes { if let v = fuses[layout.byte] { out[layout.byte] = v | ~layout.implementedMask } }
        return out
    }
}
