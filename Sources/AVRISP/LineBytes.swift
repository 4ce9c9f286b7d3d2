/// Bytes heard on a programmer's line, as an error message shows them.

/// Two hex digits.
func hex(_ byte: UInt8) -> String {
    let s = String(byte, radix: 16, uppercase: true)
    return s.count == 1 ? "0" + s : s
}

/// Printable ASCII as it is and everything else as `\xNN`: a console's prompt stays readable, and noise
/// cannot turn into stray Unicode (or fuse with the quote around it).
func printable(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { (0x20...0x7E).contains($0) && $0 != 0x5C ? String(UnicodeScalar($0)) : "\\x" + hex($0) }.joined()
}
