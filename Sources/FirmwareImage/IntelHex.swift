import BenchModel

/// What is wrong with one line of an Intel HEX file.
public enum IntelHexProblem: Equatable, Sendable {
    case missingStartCode(found: Character)
    case invalidDigit(Character)
    case oddDigitCount(Int)
    case recordTooShort(digits: Int)
    case lengthMismatch(declared: Int, actual: Int)
    case badChecksum(stored: UInt8, computed: UInt8)
    case unknownRecordType(UInt8)
    case badFieldLength(type: UInt8, expected: Int, actual: Int)
    case dataAfterEndOfFile
    case missingEndOfFile
    case conflictingData(address: UInt32, existing: UInt8, new: UInt8)
    case beyondAddressSpace(address: UInt64)
    case secondStartAddress

    var message: String {
        switch self {
        case let .missingStartCode(found):
            return "expected ':' to start the record, found \(Self.show(found))"
        case let .invalidDigit(c):
            return "\(Self.show(c)) is not a hexadecimal digit"
        case let .oddDigitCount(n):
            return "the record has an odd number of hex digits (\(n)); every byte needs two"
        case let .recordTooShort(digits):
            return "the record has \(digits) hex digits; the shortest record (length, address, type, checksum) has 10"
        case let .lengthMismatch(declared, actual):
            return "the length field says \(declared) data bytes but the record holds \(actual)"
        case let .badChecksum(stored, computed):
            return hex("checksum is 0x%02X but the record's bytes need 0x%02X", stored, computed)
        case let .unknownRecordType(t):
            return hex("unknown record type 0x%02X (Intel HEX defines 00 to 05)", t)
        case let .badFieldLength(type, expected, actual):
            return hex("a type 0x%02X record carries ", type) + "\(expected) data bytes, this one \(actual)"
        case .dataAfterEndOfFile:
            return "record after the end-of-file record (type 01)"
        case .missingEndOfFile:
            return "the file ends without an end-of-file record (:00000001FF)"
        case let .conflictingData(address, existing, new):
            return hex("address 0x%X was already given 0x%02X by an earlier record; this one says 0x%02X", address, existing, new)
        case let .beyondAddressSpace(address):
            return hex("data reaches address 0x%llX, beyond the 4 GiB address space", address)
        case .secondStartAddress:
            return "a second start-address record (type 03 or 05) with a different address"
        }
    }

    private static func show(_ c: Character) -> String {
        if let ascii = c.asciiValue, ascii >= 0x20, ascii < 0x7F { return "'\(c)'" }
        return "U+" + String(c.unicodeScalars.first!.value, radix: 16, uppercase: true).leftPadded(to: 4)
    }
}

/// A malformed Intel HEX input: where, and what.
public struct IntelHexError: Error, Equatable, Sendable, CustomStringConvertible {
    /// 1-based line number.
    public var line: Int
    /// 1-based column of the first offending character.
    public var column: Int
    public var problem: IntelHexProblem

    public init(line: Int, column: Int, problem: IntelHexProblem) {
        self.line = line
        self.column = column
        self.problem = problem
    }

    /// "line 12, column 43: checksum is 0x3F but the record's bytes need 0x41"
    public var description: String { "line \(line), column \(column): \(problem.message)" }
}

/// Reading and writing Intel HEX (record types 00 to 05, 16- and 32-bit addressing).
public enum IntelHex {
    /// Parses Intel HEX text. Accepts LF and CRLF line ends and either case of hex digit.
    public static func parse(_ text: String) throws(IntelHexError) -> MemoryImage {
        try parse(Array(text.utf8))
    }

    /// Parses Intel HEX from raw file bytes.
    public static func parse(_ data: [UInt8]) throws(IntelHexError) -> MemoryImage {
        var image = MemoryImage()
        var upperBase: UInt64 = 0          // from type 02 (segment << 4) or type 04 (upper << 16)
        var sawEndOfFile = false
        var lineNumber = 0
        var lineStart = 0
        var record = [UInt8]()
        record.reserveCapacity(64)

        while lineStart < data.count {
            lineNumber += 1
            var lineEnd = lineStart
            while lineEnd < data.count, data[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            let next = lineEnd + 1
            var contentEnd = lineEnd
            if contentEnd > lineStart, data[contentEnd - 1] == UInt8(ascii: "\r") { contentEnd -= 1 }
            defer { lineStart = next }
            if contentEnd == lineStart { continue }   // blank line

            func fail(_ column: Int, _ problem: IntelHexProblem) -> IntelHexError {
                IntelHexError(line: lineNumber, column: column, problem: problem)
            }
            if sawEndOfFile { throw fail(1, .dataAfterEndOfFile) }
            guard data[lineStart] == UInt8(ascii: ":") else {
                throw fail(1, .missingStartCode(found: character(at: lineStart, in: data)))
            }
            // Decode digit pairs.
            record.removeAll(keepingCapacity: true)
            var i = lineStart + 1
            while i < contentEnd {
                guard let high = hexValue(data[i]) else {
                    throw fail(i - lineStart + 1, .invalidDigit(character(at: i, in: data)))
                }
                guard i + 1 < contentEnd else { throw fail(i - lineStart + 1, .oddDigitCount(contentEnd - lineStart - 1)) }
                guard let low = hexValue(data[i + 1]) else {
                    throw fail(i - lineStart + 2, .invalidDigit(character(at: i + 1, in: data)))
                }
                record.append(high << 4 | low)
                i += 2
            }
            guard record.count >= 5 else { throw fail(2, .recordTooShort(digits: record.count * 2)) }
            let length = Int(record[0])
            guard record.count == length + 5 else {
                throw fail(2, .lengthMismatch(declared: length, actual: record.count - 5))
            }
            let sum = record.dropLast().reduce(UInt8(0), &+)
            let computed = 0 &- sum
            guard computed == record[record.count - 1] else {
                throw fail(2 + 2 * (record.count - 1), .badChecksum(stored: record[record.count - 1], computed: computed))
            }
            let offset = UInt64(record[1]) << 8 | UInt64(record[2])
            let type = record[3]
            let payload = Array(record[4..<4 + length])
            func expect(_ n: Int) throws(IntelHexError) {
                if length != n { throw fail(2, .badFieldLength(type: type, expected: n, actual: length)) }
            }
            switch type {
            case 0x00:
                let address = upperBase + offset
                guard address + UInt64(length) <= 1 << 32 else {
                    throw fail(4, .beyondAddressSpace(address: address + UInt64(length) - 1))
                }
                do {
                    try image.write(payload, at: UInt32(address))
                } catch {
                    if case let .conflictingData(a, old, new) = error { throw fail(10, .conflictingData(address: a, existing: old, new: new)) }
                    throw fail(4, .beyondAddressSpace(address: address))
                }
            case 0x01:
                try expect(0)
                sawEndOfFile = true
            case 0x02:
                try expect(2)
                upperBase = (UInt64(payload[0]) << 8 | UInt64(payload[1])) << 4
            case 0x04:
                try expect(2)
                upperBase = (UInt64(payload[0]) << 8 | UInt64(payload[1])) << 16
            case 0x03, 0x05:
                try expect(4)
                let start: StartAddress = type == 0x03
                    ? .segment(codeSegment: UInt16(payload[0]) << 8 | UInt16(payload[1]),
                               instructionPointer: UInt16(payload[2]) << 8 | UInt16(payload[3]))
                    : .linear(payload.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
                if let existing = image.startAddress, existing != start { throw fail(8, .secondStartAddress) }
                image.startAddress = start
            default:
                throw fail(8, .unknownRecordType(type))
            }
        }
        guard sawEndOfFile else {
            throw IntelHexError(line: lineNumber + 1, column: 1, problem: .missingEndOfFile)
        }
        return image
    }

    /// Writes `image` as Intel HEX: data records of `bytesPerRecord` bytes that never cross a
    /// 64 KiB boundary, a type 04 record wherever the upper address changes, the start record if the
    /// image has one, and the end-of-file record. Lines end in LF, digits are upper case.
    public static func format(_ image: MemoryImage, bytesPerRecord: Int = 16) -> String {
        precondition((1...255).contains(bytesPerRecord))
        var out = ""
        var currentUpper: UInt32 = 0
        func emit(_ type: UInt8, _ offset: UInt16, _ payload: [UInt8]) {
            var bytes: [UInt8] = [UInt8(payload.count), UInt8(offset >> 8), UInt8(offset & 0xFF), type]
            bytes += payload
            bytes.append(0 &- bytes.reduce(UInt8(0), &+))
            out += ":"
            for b in bytes { out += hexByte(b) }
            out += "\n"
        }
        for segment in image.segments {
            var address = segment.address
            var index = 0
            while index < segment.bytes.count {
                let upper = address >> 16
                if upper != currentUpper {
                    emit(0x04, 0, [UInt8(upper >> 8), UInt8(upper & 0xFF)])
                    currentUpper = upper
                }
                let untilBoundary = Int(0x1_0000 - (address & 0xFFFF))
                let count = min(bytesPerRecord, segment.bytes.count - index, untilBoundary)
                emit(0x00, UInt16(address & 0xFFFF), Array(segment.bytes[index..<index + count]))
                index += count
                address &+= UInt32(count)
            }
        }
        switch image.startAddress {
        case let .segment(cs, ip)?:
            emit(0x03, 0, [UInt8(cs >> 8), UInt8(cs & 0xFF), UInt8(ip >> 8), UInt8(ip & 0xFF)])
        case let .linear(eip)?:
            emit(0x05, 0, [UInt8(eip >> 24), UInt8(eip >> 16 & 0xFF), UInt8(eip >> 8 & 0xFF), UInt8(eip & 0xFF)])
        case nil:
            break
        }
        emit(0x01, 0, [])
        return out
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        default: return nil
        }
    }

    /// The character starting at `index`, decoding UTF-8 so that an error shows what a person sees.
    private static func character(at index: Int, in data: [UInt8]) -> Character {
        var end = index + 1
        while end < data.count, end < index + 4, data[end] & 0xC0 == 0x80 { end += 1 }
        return String(decoding: data[index..<end], as: UTF8.self).first ?? "\u{FFFD}"
    }
}

private let hexDigits = Array("0123456789ABCDEF")
func hexByte(_ b: UInt8) -> String { String([hexDigits[Int(b >> 4)], hexDigits[Int(b & 0xF)]]) }

func hex(_ format: String, _ args: CVarArg...) -> String { String(cFormat: format, arguments: args) }

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
