import FirmwareImage
import TestSupport
import Testing

@Suite struct MemoryImageTests {
    @Test func coalescesTouchingAndOverlappingWrites() throws {
        var image = MemoryImage()
        try image.write([1, 2], at: 10)
        try image.write([5, 6], at: 20)
        try image.write([3, 4], at: 12)          // touches the first
        try image.write([9], at: 0)
        try image.write([4, 0, 0, 0, 0, 0, 0, 5, 6], at: 13)   // bridges to the second, agreeing on both ends
        #expect(image.segments == [Segment(address: 0, bytes: [9]),
                                   Segment(address: 10, bytes: [1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 5, 6])])
        #expect(image.byteCount == 13)
        #expect(image.span == 0..<22)
    }

    @Test func refusesConflictingBytes() throws {
        var image = try MemoryImage(bytes: [1, 2, 3], at: 0x100)
        #expect(throws: MemoryImageError.conflictingData(address: 0x101, existing: 2, new: 7)) {
            try image.write([7], at: 0x101)
        }
        #expect(image.segments == [Segment(address: 0x100, bytes: [1, 2, 3])])
    }

    @Test func readsRangesWithErasedFill() throws {
        let image = try MemoryImage(bytes: [0xAA, 0xBB], at: 4)
        #expect(image.bytes(in: 2..<8) == [0xFF, 0xFF, 0xAA, 0xBB, 0xFF, 0xFF])
        #expect(image.bytes(in: 0..<2, fill: 0) == [0, 0])
        #expect(image[5] == 0xBB)
        #expect(image[6] == nil)
    }

    @Test func listsOnlyPagesHoldingData() throws {
        var image = try MemoryImage(bytes: [1], at: 0x7000)
        try image.write(Array(repeating: 2, count: 130), at: 0x70FF)
        try image.write([3], at: 0x7FFF)
        #expect(image.pagesHoldingData(pageSize: 128) == [0x7000, 0x7080, 0x7100, 0x7180, 0x7F80])
    }

    @Test func restrictsToARange() throws {
        let image = try MemoryImage(bytes: Array(0..<16), at: 0)
        #expect(image.restricted(to: 4..<8).segments == [Segment(address: 4, bytes: [4, 5, 6, 7])])
    }

    @Test(.needsFirmware) func rawBinaryLoadsAtABase() throws {
        let file = try FirmwareFile(path: Fixtures.firmware("generic_boot20_pc13.bin"), binaryBase: 0x0800_0000)
        #expect(file.format == .binary)
        #expect(file.image.lowestAddress == 0x0800_0000)
        #expect(file.image.byteCount == 7172)
        #expect(file.image.bytes(in: 0x0800_0000..<0x0800_1C04) == file.contents)
    }

    @Test func mergeRefusesAnyOverlap() throws {
        let application = try MemoryImage(bytes: Array(repeating: 1, count: 0x10), at: 0x6FF8)
        let bootloader = try MemoryImage(bytes: Array(repeating: 1, count: 0x10), at: 0x7000)
        #expect(throws: MemoryImageError.overlap(range: 0x7000..<0x7008)) {
            try MemoryImage.merging(application: application, bootloader: bootloader)
        }
        #expect(MemoryImageError.overlap(range: 0x7000..<0x7008).description == "the images overlap at 0x7000–0x7007 (8 bytes)")
    }

    @Test(.needsFirmware, arguments: Fixtures.bootloaders.filter { $0.file != "Caterina-Micro.hex" })
    func mergeOfQMKStyleApplicationWithEachBootloaderIsExact(_ bootloader: (file: String, part: String)) throws {
        // A QMK-style application: code from 0x0000, a start record, ending below the boot section.
        var generator = SystemRandomNumberGenerator()
        let appBytes = (0..<0x5A37).map { _ in UInt8.random(in: 0...255, using: &generator) }
        var application = try MemoryImage(bytes: appBytes, at: 0)
        application.startAddress = .segment(codeSegment: 0, instructionPointer: 0)
        let boot = try FirmwareFile(path: Fixtures.firmware(bootloader.file)).image
        let merged = try MemoryImage.merging(application: application, bootloader: boot)
        #expect(merged.byteCount == appBytes.count + boot.byteCount)
        #expect(merged.bytes(in: 0..<0x5A37) == appBytes)
        for segment in boot.segments {
            #expect(merged.bytes(in: segment.address..<segment.address + UInt32(segment.bytes.count)) == segment.bytes)
        }
        #expect(merged.bytes(in: 0x5A37..<0x7000) == Array(repeating: 0xFF, count: 0x7000 - 0x5A37))
        #expect(merged.startAddress == application.startAddress)
        // The seed's text recipe (drop the application's EOF line, append the bootloader) gives the same bytes.
        var plainApplication = application
        plainApplication.startAddress = nil
        let recipe = IntelHex.format(plainApplication).replacingOccurrences(of: ":00000001FF\n", with: "")
            + (try String(contentsOfFile: Fixtures.firmware(bootloader.file), encoding: .utf8))
        let viaRecipe = try IntelHex.parse(recipe)
        #expect(viaRecipe.segments == merged.segments)
    }
}

@Suite struct SHA256Tests {
    @Test func knownVectors() {
        #expect(SHA256Digest(of: [UInt8]()).description == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256Digest(of: Array("abc".utf8)).description == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256Digest(of: Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)).description
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256Digest(of: [UInt8](repeating: 0x61, count: 1_000_000)).description
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test(.needsFirmware) func matchesTheManifestForEveryRealFile() throws {
        let manifest = try String(contentsOfFile: Fixtures.firmware("MANIFEST.md"), encoding: .utf8)
        var checked = 0
        for line in manifest.split(separator: "\n") {
            let words = line.split(separator: " ", omittingEmptySubsequences: true)
            guard words.count == 2, words[0].count == 64, let pinned = SHA256Digest(hex: String(words[0])) else { continue }
            let file = try FirmwareFile(path: Fixtures.firmware(String(words[1])), binaryBase: 0)
            #expect(file.sha256 == pinned, "\(words[1])")
            checked += 1
        }
        #expect(checked == 5)
    }
}
