import FirmwareImage
import Foundation
import TestSupport
import Testing

/// An Intel HEX record with a correct checksum.
func record(_ type: UInt8, _ offset: UInt16, _ data: [UInt8]) -> String {
    var bytes: [UInt8] = [UInt8(data.count), UInt8(offset >> 8), UInt8(offset & 0xFF), type] + data
    bytes.append(0 &- bytes.reduce(0, &+))
    return ":" + bytes.map { String(format: "%02X", $0) }.joined()
}

let eof = ":00000001FF"

@Suite struct IntelHexReaderTests {
    @Test func readsDataRecordsIntoOneSegment() throws {
        let text = [record(0, 0x7000, [1, 2, 3, 4]), record(0, 0x7004, [5, 6]), eof].joined(separator: "\n") + "\n"
        let image = try IntelHex.parse(text)
        #expect(image.segments == [Segment(address: 0x7000, bytes: [1, 2, 3, 4, 5, 6])])
        #expect(image.byteCount == 6)
        #expect(image.startAddress == nil)
    }

    @Test func acceptsCRLFLowerCaseAndBlankLines() throws {
        let text = record(0, 0x10, [0xAB, 0xCD]).lowercased() + "\r\n\r\n" + eof + "\r\n"
        let image = try IntelHex.parse(text)
        #expect(image.segments == [Segment(address: 0x10, bytes: [0xAB, 0xCD])])
    }

    @Test func extendedSegmentAndLinearAddresses() throws {
        let text = [
            record(2, 0, [0x10, 0x00]),        // segment 0x1000 -> base 0x10000
            record(0, 0x0004, [0x55]),
            record(4, 0, [0x08, 0x00]),        // upper 0x0800 -> base 0x08000000
            record(0, 0x0000, [0xAA, 0xBB]),
            eof,
        ].joined(separator: "\n")
        let image = try IntelHex.parse(text)
        #expect(image.segments == [Segment(address: 0x10004, bytes: [0x55]), Segment(address: 0x0800_0000, bytes: [0xAA, 0xBB])])
    }

    @Test func keepsStartRecordsAsMetadata() throws {
        let segment = try IntelHex.parse([record(3, 0, [0x00, 0x00, 0x70, 0x00]), eof].joined(separator: "\n"))
        #expect(segment.startAddress == .segment(codeSegment: 0, instructionPointer: 0x7000))
        #expect(segment.isEmpty)
        let linear = try IntelHex.parse([record(5, 0, [0x08, 0x00, 0x01, 0x01]), eof].joined(separator: "\n"))
        #expect(linear.startAddress == .linear(0x0800_0101))
    }

    @Test func identicalOverlapIsAccepted() throws {
        let text = [record(0, 0, [1, 2, 3]), record(0, 1, [2, 3, 4]), eof].joined(separator: "\n")
        #expect(try IntelHex.parse(text).segments == [Segment(address: 0, bytes: [1, 2, 3, 4])])
    }

    /// Malformed inputs and the exact message each must produce.
    static let malformed: [(String, String, String)] = [
        ("no start code", "10000000\n" + eof, "line 1, column 1: expected ':' to start the record, found '1'"),
        ("leading space", " " + eof, "line 1, column 1: expected ':' to start the record, found ' '"),
        ("invalid digit", ":00000001FG", "line 1, column 11: 'G' is not a hexadecimal digit"),
        ("space inside", ":00000001 FF", "line 1, column 10: ' ' is not a hexadecimal digit"),
        ("non-ASCII", ":00000001F\u{E9}", "line 1, column 11: U+00E9 is not a hexadecimal digit"),
        ("control character", ":00000001\tFF", "line 1, column 10: U+0009 is not a hexadecimal digit"),
        ("odd digit count", ":00000001F", "line 1, column 10: the record has an odd number of hex digits (9); every byte needs two"),
        ("too short", ":000001FF", "line 1, column 2: the record has 8 hex digits; the shortest record (length, address, type, checksum) has 10"),
        ("colon only", ":", "line 1, column 2: the record has 0 hex digits; the shortest record (length, address, type, checksum) has 10"),
        ("length too large", ":0400000001020300\n" + eof, "line 1, column 2: the length field says 4 data bytes but the record holds 3"),
        ("length too small", ":020000000102030405\n" + eof, "line 1, column 2: the length field says 2 data bytes but the record holds 4"),
        ("bad checksum", ":0300000001020305\n" + eof, "line 1, column 16: checksum is 0x05 but the record's bytes need 0xF7"),
        ("bad checksum on line 3", record(0, 0, [1]) + "\n" + record(0, 1, [2]) + "\n:0100020003FB\n" + eof,
         "line 3, column 12: checksum is 0xFB but the record's bytes need 0xFA"),
        ("unknown type", ":00000006FA\n" + eof, "line 1, column 8: unknown record type 0x06 (Intel HEX defines 00 to 05)"),
        ("type FF", record(0xFF, 0, []) + "\n" + eof, "line 1, column 8: unknown record type 0xFF (Intel HEX defines 00 to 05)"),
        ("data after EOF", eof + "\n" + record(0, 0, [0]), "line 2, column 1: record after the end-of-file record (type 01)"),
        ("second EOF", eof + "\n" + eof, "line 2, column 1: record after the end-of-file record (type 01)"),
        ("garbage after EOF", eof + "\r\nhello", "line 2, column 1: record after the end-of-file record (type 01)"),
        ("missing EOF", record(0, 0, [0]) + "\n", "line 2, column 1: the file ends without an end-of-file record (:00000001FF)"),
        ("missing EOF without newline", record(0, 0, [0]), "line 2, column 1: the file ends without an end-of-file record (:00000001FF)"),
        ("empty file", "", "line 1, column 1: the file ends without an end-of-file record (:00000001FF)"),
        ("overlap with different bytes", [record(0, 0x100, [0x11, 0x12]), record(0, 0x101, [0x22]), eof].joined(separator: "\n"),
         "line 2, column 10: address 0x101 was already given 0x12 by an earlier record; this one says 0x22"),
        ("EOF with data", ":0100000100FE", "line 1, column 2: a type 0x01 record carries 0 data bytes, this one 1"),
        ("short segment address", ":0100000200FD\n" + eof, "line 1, column 2: a type 0x02 record carries 2 data bytes, this one 1"),
        ("long linear address", record(4, 0, [0, 0, 0]) + "\n" + eof, "line 1, column 2: a type 0x04 record carries 2 data bytes, this one 3"),
        ("short start segment", record(3, 0, [0, 0]) + "\n" + eof, "line 1, column 2: a type 0x03 record carries 4 data bytes, this one 2"),
        ("short start linear", record(5, 0, [0, 0, 0]) + "\n" + eof, "line 1, column 2: a type 0x05 record carries 4 data bytes, this one 3"),
        ("two start addresses", [record(5, 0, [0, 0, 0, 1]), record(5, 0, [0, 0, 0, 2]), eof].joined(separator: "\n"),
         "line 2, column 8: a second start-address record (type 03 or 05) with a different address"),
        ("beyond 4 GiB", [record(4, 0, [0xFF, 0xFF]), record(0, 0xFFFF, [1, 2]), eof].joined(separator: "\n"),
         "line 2, column 4: data reaches address 0x100000000, beyond the 4 GiB address space"),
        ("CRLF keeps line numbers", record(0, 0, [1]) + "\r\n" + record(0, 0, [2]) + "\r\n" + eof + "\r\n",
         "line 2, column 10: address 0x0 was already given 0x01 by an earlier record; this one says 0x02"),
    ]

    @Test(arguments: malformed)
    func malformedInputNamesLineAndColumn(_ testCase: (String, String, String)) {
        let (name, text, expected) = testCase
        do {
            _ = try IntelHex.parse(text)
            Issue.record("\(name): parsed without error")
        } catch {
            #expect(error.description == expected, "\(name)")
        }
    }

    @Test func errorCarriesLineColumnAndProblem() {
        #expect(throws: IntelHexError(line: 1, column: 16, problem: .badChecksum(stored: 0x05, computed: 0xF7))) {
            try IntelHex.parse(":0300000001020305\n" + eof)
        }
    }
}

@Suite struct IntelHexWriterTests {
    @Test(.needsFirmware, arguments: Fixtures.hexFiles)
    func realFilesRoundTrip(_ name: String) throws {
        let original = try FirmwareFile(path: Fixtures.firmware(name)).image
        let text = IntelHex.format(original)
        let again = try IntelHex.parse(text)
        #expect(again == original)
        #expect(IntelHex.format(again) == text)
    }

    @Test func writesExtendedAddressesAndSplitsAt64KiBBoundaries() throws {
        var image = try MemoryImage(bytes: Array(repeating: 0x5A, count: 40), at: 0x0001_FFF0)
        image.startAddress = .linear(0x0001_FFF0)
        let text = IntelHex.format(image)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines == [
            record(4, 0, [0x00, 0x01]),
            record(0, 0xFFF0, Array(repeating: 0x5A, count: 16)),
            record(4, 0, [0x00, 0x02]),
            record(0, 0x0000, Array(repeating: 0x5A, count: 16)),
            record(0, 0x0010, Array(repeating: 0x5A, count: 8)),
            record(5, 0, [0x00, 0x01, 0xFF, 0xF0]),
            eof,
        ])
        #expect(try IntelHex.parse(text) == image)
    }

    @Test func randomSparseImagesRoundTrip() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            var image = MemoryImage()
            for _ in 0..<Int.random(in: 1...8, using: &generator) {
                let address = UInt32.random(in: 0...0x0003_0000, using: &generator)
                let bytes = (0..<Int.random(in: 1...600, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                var attempt = image
                if (try? attempt.write(bytes, at: address)) != nil { image = attempt }
            }
            let width = Int.random(in: 1...255, using: &generator)
            #expect(try IntelHex.parse(IntelHex.format(image, bytesPerRecord: width)) == image)
        }
    }
}

@Suite struct FirmwareFileLimitTests {
    /// Device nodes, FIFOs and folders are refused by kind before anything is read: a FIFO with no writer
    /// does not block, /dev/zero does not fill memory, and no Foundation error text reaches the user.
    @Test func specialFilesAreRefusedAsNotRegular() throws {
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let fifo = folder.appendingPathComponent("pipe.hex").path
        #expect(mkfifo(fifo, 0o600) == 0)
        for (path, kind) in [("/dev/null", "a character device"), ("/dev/zero", "a character device"), (fifo, "a FIFO"), (folder.path, "a folder")] {
            #expect(throws: FirmwareFileError.unreadable(path: path, reason: "not a regular file (it is \(kind))")) { try FirmwareFile(path: path) }
        }
        #expect(throws: FirmwareFileError.missing(path: "/nonexistent/x.hex")) { try FirmwareFile(path: "/nonexistent/x.hex") }
        let locked = folder.appendingPathComponent("locked.hex").path
        #expect(FileManager.default.createFile(atPath: locked, contents: Data(":00000001FF\n".utf8), attributes: [.posixPermissions: 0]))
        if getuid() != 0 {
            #expect(throws: FirmwareFileError.unreadable(path: locked, reason: "Permission denied")) { try FirmwareFile(path: locked) }
        }
        #expect(throws: InputFileError.tooLarge(size: 12, limit: 4)) { try InputFile.contents(of: locked, maximumSize: 4) }
    }

    /// A 1 MiB contiguous image goes through HEX and back as one segment (records appended in place).
    @Test func oneMiBRoundTrip() throws {
        let image = try MemoryImage(bytes: garbage(1 << 20), at: 0)
        let back = try IntelHex.parse(IntelHex.format(image))
        #expect(back.segments.count == 1)
        #expect(back.bytes(in: 0..<(1 << 20)) == image.bytes(in: 0..<(1 << 20)))
    }
}

