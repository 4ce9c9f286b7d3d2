import BenchModel
import Dispatch
import Parts
import Synchronization
import Transport

/// An AVR target on the ISP cable, behaving like silicon: flash erases to 0xFF and programming only
/// clears bits, a page buffer is committed by the write-page instruction, writes are self-timed (the
/// datasheet's tWD values) and ignored while busy, unimplemented fuse bits read back as whatever the
/// silicon has, lock bits hide memory, and a too-fast SCK for the chip's clock garbles the link.
public final class SimulatedAVR {
    public let part: AVRPart
    public let clock: VirtualClock

    /// What the chip answers to Read Signature (another part's for the wrong-part fault).
    public var answeredSignature: Signature
    public private(set) var flash: [UInt8]
    public private(set) var eeprom: [UInt8]
    /// Implemented fuse bits only; reads add ``unimplementedBits``.
    private var storedFuses: [FuseByte: UInt8] = [:]
    private var storedLock: UInt8
    /// What unimplemented fuse and lock bits read as on this piece of silicon (bits outside each mask).
    public var unimplementedBits: UInt8 = 0xC0

    /// Whether a target is on the cable at all.
    public var isAttached = true
    /// Whether the target has power (a programmer that supplies it can switch it).
    public var isPowered = true
    /// What MISO reads with no target driving it (pull-up: 0xFF; pulled down: 0x00).
    public var floatingMISO: UInt8 = 0xFF
    /// The crystal on the board, used when the fuses select a crystal.
    public var crystalHertz: Double = 16_000_000
    /// A clock fed to XTAL1, if the board has one (most do not).
    public var externalClockHertz: Double?

    /// Faults: the target leaves after this many page writes.
    public var vanishAfterPageWrites: Int?
    /// Fault: the target loses contact as soon as a fuse write has taken.
    public var vanishAfterFuseWrite = false
    /// Fault: the next read of a programmed flash byte returns one bit flipped, once.
    public var flipNextReadOfWrittenFlash = false
    /// Fault: this flash address has a cell stuck at 1 in bit 0x04 that programming cannot clear.
    public var stuckBitAddress: UInt32?
    /// Fault: the signature the chip answers from its next chip erase on.
    public var signatureAfterErase: Signature?

    public private(set) var isResetHeld = false
    public private(set) var isProgramming = false
    /// The CPU clock latched at the last reset (fuse changes apply at the next one).
    public private(set) var cpuHertz: Double = 0
    private var busyUntil: UInt64 = 0
    private var busyPage: Range<Int>?
    private var pageBuffer: [UInt8]
    private var eepromBuffer: [Int: UInt8] = [:]
    private var extendedAddress: UInt32 = 0
    private var writtenPages: Set<Int> = []
    /// A fuse or lock write in progress: the cells take the new value when the write completes, and
    /// until then read back the old one (which is how a programmer polling by read-back sees it end).
    private var pendingFuse: (byte: FuseByte?, value: UInt8)?

    /// Page writes committed, and instructions a programmer sent while the chip was busy (ignored, as on
    /// silicon, where they corrupt the write in progress).
    public var pageWrites: Int { pageWriteCount.value }
    /// The page writes, readable from any thread (a virtual bench asks whether a board was restored).
    public let pageWriteCount = SharedCounter()
    /// When the chip took its first erase, flash page or fuse (the host's monotonic clock, ns), or 0: how
    /// long a board waited on the cable before its restore changed it.
    public let firstWrite = SharedMoment()
    public private(set) var instructionsWhileBusy: [String] = []
    public private(set) var instructionCount = 0

    public init(part: AVRPart, clock: VirtualClock, flash: [UInt8]? = nil, eeprom: [UInt8]? = nil, fuses: FuseSet? = nil, lock: UInt8? = nil) {
        self.part = part
        self.clock = clock
        answeredSignature = part.signature
        var image = flash ?? []
        image += [UInt8](repeating: 0xFF, count: max(0, part.flash.size - image.count))
        self.flash = Array(image.prefix(part.flash.size))
        var eepromImage = eeprom ?? []
        eepromImage += [UInt8](repeating: 0xFF, count: max(0, part.eeprom.size - eepromImage.count))
        self.eeprom = Array(eepromImage.prefix(part.eeprom.size))
        let initial = fuses ?? part.factoryFuses
        // A part without named semantics has no known factory value: it starts with every bit unprogrammed.
        for layout in part.fuseBytes { storedFuses[layout.byte] = (initial[layout.byte] ?? layout.factoryDefault ?? 0xFF) & layout.implementedMask }
        storedLock = (lock ?? part.lock.factoryDefault) & part.lock.implementedMask
        pageBuffer = [UInt8](repeating: 0xFF, count: part.flash.pageSize)
        cpuHertz = clockHertz()
    }

    // MARK: What a test or a dump reads

    /// Completes a fuse or lock write whose time has come.
    private func settle() {
        guard !isBusy, let pending = pendingFuse else { return }
        if let byte = pending.byte { storedFuses[byte] = pending.value } else { storedLock &= pending.value }
        pendingFuse = nil
        if vanishAfterFuseWrite, pending.byte != nil { isAttached = false }
    }

    /// The fuses as the chip reports them (unimplemented bits included).
    public var fuses: FuseSet {
        settle()
        var out = FuseSet()
        for layout in part.fuseBytes { out[layout.byte] = storedFuses[layout.byte]! | (unimplementedBits & ~layout.implementedMask) }
        return out
    }

    public var lock: UInt8 {
        settle()
        return storedLock | (unimplementedBits & ~part.lock.implementedMask)
    }

    // MARK: Self-programming (what a bootloader running on the chip does with SPM)

    /// Where the boot section the fuses select begins (the flash end on a part without one).
    public var bootSectionStart: Int {
        Int(part.bootSection(in: fuses)?.start ?? UInt32(part.flash.size))
    }

    /// Whether the lock bits let SPM write the boot section: BLB1 mode 1 (BLB12 and BLB11 unprogrammed).
    private var bootSectionWritable: Bool { storedLock & 0x30 == 0x30 }

    /// SPM's page erase and page write of the page at `start`, as a bootloader issues them: the page is
    /// erased and written with `data`, taking tWD_FLASH for each; a page in the boot section is left alone
    /// when the lock bits forbid it (as the hardware ignores such an SPM). Returns whether it was written.
    @discardableResult
    public func selfProgramPage(at start: Int, _ data: [UInt8]) -> Bool {
        settle()
        clock.advance(to: busyUntil)
        guard start + part.flash.pageSize <= part.flash.size, start % part.flash.pageSize == 0 else { return false }
        if start >= bootSectionStart && !bootSectionWritable { return false }
        firstWrite.markOnce()
        for i in 0..<part.flash.pageSize { flash[start + i] = i < data.count ? data[i] : 0xFF }
        busyUntil = clock.now + 2 * UInt64(part.times.flashPageWrite) * 1000
        writtenPages.insert(start / part.flash.pageSize)
        pageWriteCount.increment()
        if let limit = vanishAfterPageWrites, pageWrites >= limit { isAttached = false }
        return true
    }

    /// SPM's page erase of every page below the boot section (a bootloader's "erase the application").
    public func selfEraseApplication() {
        settle()
        for page in stride(from: 0, to: bootSectionStart, by: part.flash.pageSize) {
            clock.advance(to: busyUntil)
            for i in page..<page + part.flash.pageSize { flash[i] = 0xFF }
            busyUntil = clock.now + UInt64(part.times.flashPageWrite) * 1000
        }
    }

    /// The application's (or a bootloader's) EEPROM writes through EEAR/EEDR: each byte takes tWD_EEPROM,
    /// one after the other. Bytes beyond the EEPROM wrap, as the address register does.
    public func selfWriteEEPROM(at start: Int, _ bytes: [UInt8]) {
        settle()
        guard !eeprom.isEmpty else { return }
        for (i, byte) in bytes.enumerated() {
            clock.advance(to: busyUntil)
            eeprom[(start + i) % eeprom.count] = byte
            busyUntil = clock.now + UInt64(part.times.eepromWrite) * 1000
        }
    }

    /// True while a self-timed write is in progress.
    public var isBusy: Bool { clock.now < busyUntil }

    /// The fastest SCK the chip follows at its current clock: SCK high and low must each last more than
    /// 2 CPU cycles below 12 MHz, 3 at or above (datasheet, Serial Programming Characteristics).
    public var maximumSCK: Double { cpuHertz >= 12_000_000 ? cpuHertz / 6 : cpuHertz / 4 }

    // MARK: The ISP pins

    /// Drives RESET: held low, the chip stops and may enter programming mode; released, it runs.
    /// A new reset latches the clock the fuses select now.
    public func setReset(held: Bool) {
        settle()
        if held && !isResetHeld { cpuHertz = clockHertz() }
        if !held { isProgramming = false }
        isResetHeld = held
    }

    /// Shifts one four-byte instruction through the SPI at `sckHertz`, taking 32 bit times.
    public func exchange(_ bytes: [UInt8], sckHertz: Double) -> [UInt8] {
        precondition(bytes.count == 4)
        clock.advance(nanoseconds: UInt64(32 / sckHertz * 1e9))
        instructionCount += 1
        guard isAttached, isPowered else { return [UInt8](repeating: floatingMISO, count: 4) }
        // Not in reset: the application owns the pins. Too fast for the clock: bits are missed.
        guard isResetHeld, sckHertz < maximumSCK else {
            return [UInt8](repeating: floatingMISO, count: 4)
        }
        if !isProgramming {
            guard bytes[0] == 0xAC, bytes[1] == 0x53 else { return [UInt8](repeating: floatingMISO, count: 4) }
            isProgramming = true
            return [0x00, 0xAC, 0x53, 0x00]
        }
        return [0x00, bytes[0], bytes[1], execute(bytes)]
    }

    // MARK: The instruction set

    private var lockMode: UInt8 { storedLock & 0x03 }

    private func execute(_ b: [UInt8]) -> UInt8 {
        settle()
        let busy = isBusy
        func ignoredWhileBusy() -> Bool {
            if busy { instructionsWhileBusy.append(b.map { String(cFormat: "%02X", $0) }.joined(separator: " ")) }
            return busy
        }
        switch b[0] {
        case 0xAC:
            switch b[1] {
            case 0x53: return 0x00
            case 0x80:
                if ignoredWhileBusy() { return 0 }
                chipErase()
            case 0xA0, 0xA8, 0xA4:
                if ignoredWhileBusy() { return 0 }
                let byte: FuseByte = b[1] == 0xA0 ? .low : (b[1] == 0xA8 ? .high : .extended)
                if let layout = part.layout(of: byte), lockMode == 0x03 {
                    var value = b[3] & layout.implementedMask
                    // SPIEN cannot be changed in serial programming mode.
                    if let spien = part.field("SPIEN"), spien.byte == byte { value = value & ~spien.mask | storedFuses[byte]! & spien.mask }
                    pendingFuse = (byte, value)
                    firstWrite.markOnce()
                }
                busyUntil = clock.now + UInt64(part.times.fuseWrite) * 1000
            default:
                if b[1] & 0xE0 == 0xE0 {
                    if ignoredWhileBusy() { return 0 }
                    // Lock bits can only be programmed (cleared) until a chip erase.
                    pendingFuse = (nil, b[3] & part.lock.implementedMask)
                    busyUntil = clock.now + UInt64(part.times.fuseWrite) * 1000
                }
            }
            return 0
        case 0xF0:
            return busy ? 0x01 : 0x00
        case 0x30:
            let index = Int(b[2] & 3)
            return index < 3 ? answeredSignature.bytes[index] : 0xFF
        case 0x38:
            return 0x9A
        case 0x50 where b[1] == 0x00: return fuses.low ?? 0xFF
        case 0x58 where b[1] == 0x08: return fuses.high ?? 0xFF
        case 0x50 where b[1] == 0x08: return fuses.extended ?? 0xFF
        case 0x58 where b[1] == 0x00: return lock
        case 0x4D:
            // Parts within 128 KiB ignore Load Extended Address, as a USBasp may send it to any part.
            if part.needsExtendedAddress { extendedAddress = UInt32(b[2]) }
            return 0
        case 0x20, 0x28:
            let address = flashAddress(b)
            if busy, let page = busyPage, page.contains(address) { return 0xFF }   // data polling reads 0xFF
            if lockMode == 0x00 { return 0x00 }                                      // verification disabled
            var value = flash[address]
            // (Not the last byte of a page: programmers poll that one right after the write.)
            if flipNextReadOfWrittenFlash, writtenPages.contains(address / part.flash.pageSize), value != 0xFF,
               address % part.flash.pageSize != part.flash.pageSize - 1 {
                flipNextReadOfWrittenFlash = false
                value ^= 0x10
            }
            return value
        case 0x40, 0x48:
            if ignoredWhileBusy() { return 0 }
            let wordInPage = (Int(b[1]) << 8 | Int(b[2])) & (part.flash.pageSize / 2 - 1)
            pageBuffer[wordInPage * 2 + (b[0] == 0x48 ? 1 : 0)] = b[3]
            return 0
        case 0x4C:
            if ignoredWhileBusy() { return 0 }
            writePage(at: flashAddress(b) / part.flash.pageSize * part.flash.pageSize)
            return 0
        case 0xA0:
            if busy { return 0xFF }
            if lockMode == 0x00 { return 0x00 }
            return eeprom[eepromAddress(b)]
        case 0xC0:
            if ignoredWhileBusy() { return 0 }
            if lockMode == 0x03 { eeprom[eepromAddress(b)] = b[3] }
            busyUntil = clock.now + UInt64(part.times.eepromWrite) * 1000
            return 0
        case 0xC1 where part.eepromHasPageBuffer:
            if ignoredWhileBusy() { return 0 }
            eepromBuffer[Int(b[2]) & (part.eeprom.pageSize - 1)] = b[3]
            return 0
        case 0xC2 where part.eepromHasPageBuffer:
            if ignoredWhileBusy() { return 0 }
            let base = eepromAddress(b) / part.eeprom.pageSize * part.eeprom.pageSize
            if lockMode == 0x03 { for (offset, value) in eepromBuffer { eeprom[base + offset] = value } }
            eepromBuffer = [:]
            busyUntil = clock.now + UInt64(part.times.eepromWrite) * 1000
            return 0
        default:
            instructionsWhileBusy.append("unknown instruction " + b.map { String(cFormat: "%02X", $0) }.joined(separator: " "))
            return 0xFF
        }
    }

    private func flashAddress(_ b: [UInt8]) -> Int {
        let word = extendedAddress << 16 | UInt32(b[1]) << 8 | UInt32(b[2])
        return Int((word * 2 + (b[0] & 0x08 != 0 ? 1 : 0)) % UInt32(part.flash.size))
    }

    private func eepromAddress(_ b: [UInt8]) -> Int { (Int(b[1]) << 8 | Int(b[2])) % part.eeprom.size }

    private func chipErase() {
        firstWrite.markOnce()
        flash = [UInt8](repeating: 0xFF, count: part.flash.size)
        if let eesave = part.field("EESAVE"), let value = storedFuses[eesave.byte], eesave.isProgrammed(in: value) {
            // EESAVE keeps the EEPROM through a chip erase.
        } else {
            eeprom = [UInt8](repeating: 0xFF, count: part.eeprom.size)
        }
        storedLock = part.lock.implementedMask
        writtenPages = []
        if let garbled = signatureAfterErase { answeredSignature = garbled }
        busyUntil = clock.now + UInt64(part.times.chipErase) * 1000
    }

    private func writePage(at start: Int) {
        firstWrite.markOnce()
        defer { pageBuffer = [UInt8](repeating: 0xFF, count: part.flash.pageSize) }
        busyUntil = clock.now + UInt64(part.times.flashPageWrite) * 1000
        busyPage = start..<start + part.flash.pageSize
        guard lockMode == 0x03 else { return }
        for i in 0..<part.flash.pageSize {
            var value = pageBuffer[i]
            if let stuck = stuckBitAddress, Int(stuck) == start + i { value |= 0x04 }
            flash[start + i] &= value
        }
        writtenPages.insert(start / part.flash.pageSize)
        pageWriteCount.increment()
        if let limit = vanishAfterPageWrites, pageWrites >= limit { isAttached = false }
    }

    /// The CPU clock the current fuses select on this board.
    private func clockHertz() -> Double {
        // Without named semantics the board is taken to run on its crystal.
        guard let low = storedFuses[.low], let setting = part.clock(low: low) else { return crystalHertz }
        var hertz: Double
        switch setting.source {
        case .crystal: hertz = crystalHertz
        case .lowFrequencyCrystal: hertz = 32_768
        case .internalRC, .internal128kHz, .pll: hertz = setting.internalHertz ?? 8e6
        case .externalClock: hertz = externalClockHertz ?? 0
        case .externalRC, .reserved: hertz = 0
        }
        if setting.dividedBy8 == true { hertz /= 8 }
        return hertz
    }
}

/// A count that one thread raises and any thread may read.
/// A moment other threads may read: the first time ``markOnce()`` was called, on the monotonic clock.
public final class SharedMoment: Sendable {
    private let nanoseconds = Atomic<UInt64>(0)
    public init() {}
    /// Nanoseconds of the monotonic clock at the first mark, 0 before it.
    public var uptimeNanoseconds: UInt64 { nanoseconds.load(ordering: .acquiring) }
    public func markOnce() {
        _ = nanoseconds.compareExchange(expected: 0, desired: DispatchTime.now().uptimeNanoseconds, ordering: .acquiringAndReleasing)
    }
}

public final class SharedCounter: Sendable {
    private let count = Atomic<Int>(0)
    public init() {}
    public var value: Int { count.load(ordering: .relaxed) }
    public func increment() { count.add(1, ordering: .relaxed) }
}
