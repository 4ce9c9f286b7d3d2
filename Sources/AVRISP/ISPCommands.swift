import Parts
import Transport

/// The serial-programming instructions every programmer shares, built on ``ISPProgrammer/transfer(_:)``.
extension ISPProgrammer {
    /// Programmers with one fixed SCK (the ArduinoISP sketch) have nothing to forget.
    public func forgetTargetSpeed() {}

    /// Reads the three signature bytes.
    public func readSignature() throws(ISPError) -> Signature {
        let b0 = try transfer(.readSignature(0))[3]
        let b1 = try transfer(.readSignature(1))[3]
        let b2 = try transfer(.readSignature(2))[3]
        return Signature(b0, b1, b2)
    }

    /// Reads the fuse bytes the part has.
    public func readFuses(of part: AVRPart) throws(ISPError) -> FuseSet {
        var fuses = FuseSet()
        for layout in part.fuseBytes { fuses[layout.byte] = try transfer(.readFuse(layout.byte))[3] }
        return fuses
    }

    /// Reads the fuse bytes a part of unknown type may have (low, high, extended).
    public func readAllFuses() throws(ISPError) -> FuseSet {
        var fuses = FuseSet()
        for byte in FuseByte.allCases { fuses[byte] = try transfer(.readFuse(byte))[3] }
        return fuses
    }

    public func readLock() throws(ISPError) -> UInt8 { try transfer(.readLock)[3] }

    /// Writes one fuse byte and waits tWD_FUSE (polling where cheap).
    public func writeFuse(_ byte: FuseByte, _ value: UInt8, part: AVRPart) throws(ISPError) {
        _ = try transfer(.writeFuse(byte, value))
        try waitUntilReady(worstCaseMicroseconds: part.times.fuseWrite, operation: "writing the \(byte.rawValue) fuse")
    }

    /// Writes the lock byte and waits tWD_FUSE.
    public func writeLock(_ value: UInt8, part: AVRPart) throws(ISPError) {
        _ = try transfer(.writeLock(value))
        try waitUntilReady(worstCaseMicroseconds: part.times.fuseWrite, operation: "writing the lock bits")
    }

    /// Erases flash, EEPROM (unless EESAVE) and lock bits, waits tWD_ERASE, and re-enters programming
    /// mode, as avrdude does after every ISP erase: the writes start from a fresh Programming Enable.
    public func chipErase(part: AVRPart) throws(ISPError) {
        _ = try transfer(.chipErase)
        try waitUntilReady(worstCaseMicroseconds: part.times.chipErase, operation: "the chip erase")
        leaveProgrammingMode()
        try enterProgrammingMode()
    }

    /// Waits until the target finishes a self-timed write: polls RDY/BSY where a round trip is cheap, and
    /// fails if it is still busy at twice the worst case; otherwise sleeps the worst case.
    public func waitUntilReady(worstCaseMicroseconds: Int, operation: String) throws(ISPError) {
        guard pollsReadyBusy else {
            time.sleep(microseconds: worstCaseMicroseconds)
            return
        }
        let start = time.now
        let limit = UInt64(worstCaseMicroseconds) * 2_000
        // Busy only counts if a poll sent after the deadline still says so: a host thread held back
        // past the deadline between two polls (a loaded bench PC) must not blame the chip.
        var pastDeadline = false
        while try transfer(.pollBusy)[3] & 1 == 1 {
            if pastDeadline {
                throw .stillBusy(operation: operation, waitedMicroseconds: Int(time.elapsed(since: start) / 1000))
            }
            pastDeadline = time.elapsed(since: start) > limit
        }
    }

    /// Default flash read through single instructions (two per word), with the extended address byte
    /// loaded whenever the 128 KiB window changes.
    public func readFlashByInstructions(from address: UInt32, count: Int, part: AVRPart) throws(ISPError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        var extended: UInt32? = nil
        for a in address..<address + UInt32(count) {
            if part.needsExtendedAddress, extended != a >> 17 {
                extended = a >> 17
                _ = try transfer(.loadExtendedAddress(UInt8(a >> 17)))
            }
            out.append(try transfer(.readFlash(byteAddress: a))[3])
        }
        return out
    }

    /// Default page programming through single instructions: load the page buffer, write the page, wait.
    public func writeFlashByInstructions(_ pages: [FlashPage], part: AVRPart, progress: (Int) -> Void) throws(ISPError) {
        var done = 0
        for page in pages {
            if part.needsExtendedAddress { _ = try transfer(.loadExtendedAddress(UInt8(page.address >> 17))) }
            for (offset, byte) in page.bytes.enumerated() where byte != 0xFF {
                _ = try transfer(.loadFlashPage(byteAddress: page.address + UInt32(offset), value: byte))
            }
            _ = try transfer(.writeFlashPage(byteAddress: page.address))
            try waitUntilReady(worstCaseMicroseconds: part.times.flashPageWrite, operation: "writing the flash page at 0x\(String(page.address, radix: 16))")
            done += page.bytes.count
            progress(done)
        }
    }

    /// Default EEPROM read through single instructions.
    public func readEEPROMByInstructions(from address: Int, count: Int) throws(ISPError) -> [UInt8] {
        var out: [UInt8] = []
        for a in address..<address + count { out.append(try transfer(.readEEPROM(UInt16(a)))[3]) }
        return out
    }

    /// EEPROM write through the page buffer (Load EEPROM Memory Page, Write EEPROM Memory Page), polling
    /// RDY/BSY: one self-timed write per page instead of one per byte. Parts without an EEPROM page
    /// buffer (ATmega8, ATmega128) are written byte by byte.
    public func writeEEPROMByPages(_ bytes: [(address: Int, value: UInt8)], part: AVRPart) throws(ISPError) {
        guard part.eepromHasPageBuffer else { return try writeEEPROMByInstructions(bytes, part: part) }
        let pageSize = part.eeprom.pageSize
        var pages: [Int: [(Int, UInt8)]] = [:]
        for (address, value) in bytes { pages[address / pageSize * pageSize, default: []].append((address, value)) }
        for base in pages.keys.sorted() {
            for (address, value) in pages[base]! { _ = try transfer(.loadEEPROMPage(UInt16(address), value)) }
            _ = try transfer(.writeEEPROMPage(UInt16(base)))
            try waitUntilReady(worstCaseMicroseconds: part.times.eepromWrite, operation: "writing the EEPROM page at 0x\(String(base, radix: 16))")
        }
    }

    /// Default EEPROM write, byte by byte.
    public func writeEEPROMByInstructions(_ bytes: [(address: Int, value: UInt8)], part: AVRPart) throws(ISPError) {
        for (address, value) in bytes {
            _ = try transfer(.writeEEPROM(UInt16(address), value))
            try waitUntilReady(worstCaseMicroseconds: part.times.eepromWrite, operation: "writing EEPROM at 0x\(String(address, radix: 16))")
        }
    }
}

/// SCK frequencies as people read them.
public func formatFrequency(_ hertz: Double) -> String {
    if hertz >= 1_000_000 { return "\(trimmed(hertz / 1_000_000)) MHz" }
    if hertz >= 1000 { return "\(trimmed(hertz / 1000)) kHz" }
    return "\(trimmed(hertz)) Hz"
}

/// Exact values keep their decimals (187.5, 93.75); a repeating one such as 1000/3 reads as 333.
private func trimmed(_ value: Double) -> String {
    var rounded = (value * 100).rounded() / 100
    if abs(rounded - value) > 1e-9 { rounded = value >= 100 ? value.rounded() : (value * 10).rounded() / 10 }
    return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
}
