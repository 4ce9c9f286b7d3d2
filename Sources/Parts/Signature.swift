/// The three signature bytes an AVR answers to the "read signature" instruction.
public struct Signature: Hashable, Sendable, CustomStringConvertible, Codable {
    public let bytes: [UInt8]

    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8) { bytes = [b0, b1, b2] }

    /// Parses "0x1E9587", "1e9587", "1E 95 87" or "0x1e 0x95 0x87"; nil for anything else.
    public init?(_ text: String) {
        var digits = ""
        for word in text.lowercased().split(whereSeparator: { $0 == " " || $0 == ":" }) {
            digits += word.hasPrefix("0x") ? word.dropFirst(2) : word
        }
        guard digits.count == 6, let value = UInt32(digits, radix: 16) else { return nil }
        self.init(UInt8(value >> 16), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF))
    }

    /// The signature a target answers when nothing drives MISO: all ones (line pulled up) or all zeros.
    public var meansNoTarget: Bool { bytes == [0xFF, 0xFF, 0xFF] || bytes == [0x00, 0x00, 0x00] }

    /// "0x1E9587", as avrdude prints it.
    public var description: String { "0x" + bytes.map { formatHex($0) }.joined() }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let signature = Signature(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "bad signature \(text)"))
        }
        self = signature
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

func formatHex(_ byte: UInt8) -> String {
    let digits = Array("0123456789ABCDEF")
    return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
}

func formatHex(_ value: UInt32, width: Int) -> String {
    let text = String(value, radix: 16, uppercase: true)
    return "0x" + String(repeating: "0", count: max(0, width - text.count)) + text
}
