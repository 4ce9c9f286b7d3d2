import FirmwareImage
import Foundation
import Parts
import Testing
import TestSupport

/// The families beyond the first eight parts: their clock tables, BOOTSZ in the extended byte, parts
/// without a boot section, and parts without named semantics.
@Suite struct NamedFuseTests {
    @Test func decodesTheATtinyClocks() throws {
        let t85 = avr("attiny85")
        #expect(t85.clock(low: 0xE1)?.source == .pll)
        #expect(t85.clock(low: 0xE1)?.dividedBy8 == false)
        #expect(t85.clock(low: 0x62)?.detail == "calibrated internal RC oscillator, 8 MHz")
        #expect(t85.clock(low: 0x62)?.dividedBy8 == true)
        #expect(t85.clock(low: 0xFF)?.source == .crystal)
        #expect(t85.clock(low: 0xE5)?.source == .reserved)

        // ATtiny13A: two CKSEL bits, SUT above them, CKDIV8 at bit 4, SPIEN in the low byte.
        let t13 = avr("attiny13a")
        let factory = try #require(t13.clock(low: 0x6A))
        #expect(factory.detail == "calibrated internal RC oscillator, 9.6 MHz")
        #expect(factory.dividedBy8 == true)
        #expect(factory.description == "calibrated internal RC oscillator, 9.6 MHz (CKSEL=10, SUT=10), divided by 8 at start-up (CKDIV8 programmed)")
        #expect(t13.clock(low: 0x79)?.detail == "calibrated internal RC oscillator, 4.8 MHz")
        #expect(t13.lint(FuseSet(low: 0xEA), board: nil).map(\.code).contains(.disablesSerialProgramming))

        let t2313 = avr("attiny2313a")
        #expect(t2313.clock(low: 0x64)?.detail == "calibrated internal RC oscillator, 8 MHz")
        #expect(t2313.clock(low: 0x62)?.detail == "calibrated internal RC oscillator, 4 MHz")
        let t84 = avr("attiny84")
        #expect(t84.clock(low: 0x61)?.source == .reserved, "no PLL on the ATtiny84")
        #expect(avr("atmega16u2").clock(low: 0x54)?.source == .reserved, "no low-frequency crystal on the U2 parts")
    }

    @Test func theATmega168KeepsBOOTSZInTheExtendedByte() throws {
        let m168 = avr("atmega168")
        let fuses = FuseSet(low: 0xFF, high: 0xDD, extended: 0xFC)
        let section = try #require(m168.bootSection(in: fuses))
        #expect(section.bootsz == 2 && section.start == 0x3E00 && section.size == 512)
        #expect(m168.resetVector(fuses) == .bootSection(0x3E00))
        let optiboot = try MemoryImage(bytes: Array(repeating: 0x0C, count: 500), at: 0x3E00)
        #expect(m168.checkPlacement(of: optiboot, fuses: fuses).filter { $0.severity == .error }.isEmpty)
        // Without the extended byte, placement waits for the chip's own fuses.
        #expect(m168.checkPlacement(of: optiboot, fuses: FuseSet(high: 0xDD)).map(\.message).contains {
            $0.contains("no extended fuse")
        })
    }

    @Test func aBootloaderByAddressOnAnATtiny() throws {
        let t85 = avr("attiny85")
        let micronucleus = try MemoryImage(bytes: Array(repeating: 0x0C, count: 1536), at: 0x1A00)
        let ready = t85.checkPlacement(of: micronucleus, fuses: FuseSet(low: 0xE1, high: 0xDD, extended: 0xFE))
        #expect(ready.filter { $0.severity >= .warning }.isEmpty, "\(ready)")
        #expect(ready.contains { $0.code == .placementByAddress && $0.message.contains("erased flash") })

        let noSelfProgramming = t85.checkPlacement(of: micronucleus, fuses: FuseSet(low: 0xE1, high: 0xDD, extended: 0xFF))
        #expect(noSelfProgramming.contains { $0.severity == .error && $0.code == .selfProgrammingDisabled })

        // A reset vector: RJMP k = 0xCFF from 0x0000 wraps around the 4096 words to 0x1A00.
        var vector = try MemoryImage(bytes: [0xFF, 0xCC], at: 0)
        vector = try MemoryImage.merging(application: vector, bootloader: micronucleus)
        let jumps = t85.checkPlacement(of: vector, fuses: FuseSet(extended: 0xFE))
        #expect(jumps.contains { $0.message.contains("jumps to 0x1A00, where the image has code") }, "\(jumps)")
        let astray = try MemoryImage.merging(application: try MemoryImage(bytes: [0x00, 0xC8], at: 0), bootloader: micronucleus)
        #expect(t85.checkPlacement(of: astray, fuses: FuseSet(extended: 0xFE)).contains { $0.severity == .error && $0.code == .resetMissesBootloader })
    }

    @Test func fusesOfAPartWithoutNamedSemanticsNeedConsent() throws {
        let t441 = avr("attiny441")
        #expect(!t441.hasNamedFuses)
        let refused = t441.lint(FuseSet(low: 0x42), board: nil)
        #expect(refused.map(\.severity) == [.error])
        #expect(refused.first?.code == .noFuseSemantics)
        #expect(refused.first?.message.contains("allow_unsafe_fuses = true") == true)
        #expect(t441.lint(FuseSet(low: 0x42), board: nil, allowUnsafe: true).map(\.severity) == [.warning])
        #expect(t441.lint(FuseSet(), board: nil).isEmpty, "no fuses, nothing to refuse")
        #expect(t441.clock(low: 0x42) == nil)
        #expect(t441.describe(FuseSet(low: 0x42)).lines.last?.contains("no named fuse semantics") == true)
        let image = try MemoryImage(bytes: Array(repeating: 1, count: 64), at: 0x0F00)
        #expect(t441.checkPlacement(of: image, fuses: FuseSet()).map(\.code) == [.placementUnchecked])
    }

    @Test func siblingsThatShareASignature() {
        let named = PartCatalog.avrParts(withSignature: Signature(0x1E, 0x95, 0x02))
        #expect(named.map(\.id) == ["atmega32a", "atmega32"])
        #expect(PartCatalog.avrParts(withSignature: Signature(0x1E, 0x96, 0x82)).map(\.id) == ["at90usb646", "at90usb647"])
        #expect(PartCatalog.avrParts(withSignature: Signature(0x1E, 0x98, 0x01)).map(\.id) == ["atmega2560"])
    }

    @Test func theAT90SEraPartsAreListedNotRestored() throws {
        let s2313 = avr("at90s2313")
        #expect(s2313.restoreRefusal?.contains("AT90S-era") == true)
        #expect(s2313.fuseBytes.isEmpty)
        #expect(avr("atmega161").instructionSet == .legacy(fuseMask: 0x5F))
        #expect(avr("atmega2560").restoreRefusal == nil)
        #expect(avr("atmega2560").needsExtendedAddress)
        #expect(!avr("at90usb1286").needsExtendedAddress)
    }
}
