/// How text that came from outside (a file, an argument, a device) is shown inside a message: control and
/// format characters as escapes, everything else as it is. A newline cannot split a `FILE:LINE:COLUMN`
/// message, a NUL or terminal escape never reaches the console, and what is shown is what the input held.
extension StringProtocol {
    public var escapedForDisplay: String {
        var out = ""
        for scalar in unicodeScalars {
            // Printable ASCII, nearly all of any message, needs no look-up in the Unicode tables.
            if (0x20..<0x7F).contains(scalar.value) {
                out.unicodeScalars.append(scalar)
                continue
            }
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned:
                out += scalar.value < 0x80 ? "\\x" + hexDigits(scalar.value, width: 2) : "\\u{" + hexDigits(scalar.value, width: 4) + "}"
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

extension StringProtocol {
    /// The text without the spaces, tabs, carriage returns and line ends at either end.
    public var trimmingWhitespace: String {
        let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }
        guard let first = firstIndex(where: { !isBlank($0) }), let last = lastIndex(where: { !isBlank($0) }) else { return "" }
        return String(self[first...last])
    }
}

extension Sequence<UInt8> {
    /// The bytes as `\xNN` each.
    public var escapedBytes: String { map { "\\x" + hexDigits(UInt32($0), width: 2) }.joined() }
}

private func hexDigits(_ value: UInt32, width: Int) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}
