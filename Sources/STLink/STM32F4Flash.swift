import BenchModel
import FoundationEssentials
import Parts

/// STM32F401/F411 flash programming through an ST-Link: the flash interface of RM0368 §3 (keys, sector
/// erase, programming at the parallelism the supply allows, OPTCR) and read-protection removal as
/// `stm32f2x unlock` does it: RDP back to level 0 (0xAA) through FLASH_OPTCR, which mass-erases the flash.
public final class STM32F4Flash: STM32FlashController {
    public let link: STLink
    public let target: STM32Target
    private var behaviour: STM32Variant.FlashBehaviour { target.variant.flash }
    /// Program/erase parallelism in bytes (1, 2 or 4), from the target's supply (RM0368 §3.5.2, Table 7:
    /// x32 from 2.7 V, x16 from 2.1 V, x8 below), chosen when the link is checked.
    private var parallelism = 4

    static let interface: UInt32 = 0x4002_3C00
    static let keyRegister = interface + 0x04, optionKeyRegister = interface + 0x08
    static let statusRegister = interface + 0x0C, controlRegister = interface + 0x10, optionControlRegister = interface + 0x14
    static let optionKey1: UInt32 = 0x0819_2A3B, optionKey2: UInt32 = 0x4C5D_6E7F
    // CR bits.
    static let pg: UInt32 = 1 << 0, ser: UInt32 = 1 << 1, mer: UInt32 = 1 << 2, strt: UInt32 = 1 << 16, lock: UInt32 = 1 << 31
    // SR bits.
    static let eop: UInt32 = 1 << 0, operr: UInt32 = 1 << 1, wrperr: UInt32 = 1 << 4, pgaerr: UInt32 = 1 << 5
    static let pgperr: UInt32 = 1 << 6, pgserr: UInt32 = 1 << 7, rderr: UInt32 = 1 << 8, bsy: UInt32 = 1 << 16
    static let errors = operr | wrperr | pgaerr | pgperr | pgserr | rderr
    // OPTCR bits.
    static let optlock: UInt32 = 1 << 0, optstrt: UInt32 = 1 << 1

    public init(link: STLink, target: STM32Target) {
        self.link = link
        self.target = target
    }

    public var programmingDescription: String {
        ["in bytes (PSIZE x8)", "in half-words (PSIZE x16)", "", "in words (PSIZE x32)"][parallelism - 1]
    }

    /// Picks the parallelism the measured supply allows; x16 needs firmware that writes half-words.
    public func checkLink() throws(STM32Error) {
        let volts = try stlink { () throws(STLinkError) in try link.targetVoltage() }
        parallelism = volts >= 2.7 ? 4 : volts >= 2.1 ? 2 : 1
        if parallelism == 2, !link.canWriteHalfWords {
            throw .link(.firmwareTooOld(version: link.version?.description ?? "?",
                                        needs: String(cFormat: "16-bit memory writes (firmware J26 or later), which programming at x16 parallelism (the target runs at %.2f V) needs", volts)))
        }
    }

    /// OPTCR.RDP other than 0xAA: level 1 (or 2, which nothing undoes).
    public func isReadProtected() throws(STM32Error) -> Bool {
        try readProtectionLevel() != 0xAA
    }

    public func readOptionBytes() throws(STM32Error) -> [UInt8] {
        try stlink { () throws(STLinkError) in try link.read32(target.family.optionBytes.address, count: target.family.optionBytes.length) }
    }

    public func read(_ address: UInt32, count: Int) throws(STM32Error) -> [UInt8] {
        try stlink { () throws(STLinkError) in try link.read32(address, count: count) }
    }

    /// Erases sectors one by one (SER with the sector number in SNB, at the chosen parallelism).
    public func erase(_ units: [FlashGeometry.Unit], progress: (Int) -> Void = { _ in }) throws(STM32Error) {
        try unlock()
        for (i, sector) in units.enumerated() {
            let command = Self.ser | UInt32(sector.index) << 3 | psize
            try writeControl(command)
            try writeControl(command | Self.strt)
            try waitWhileBusy(worstCaseMilliseconds: behaviour.eraseMilliseconds(unitSize: sector.size),
                              operation: "erasing sector \(sector.index) (\(sector.size / 1024) KiB at " + String(cFormat: "0x%08X)", sector.address))
            progress(i + 1)
        }
        try writeControl(Self.lock)
    }

    /// Programs `bytes` at `address` with PG set, in accesses of the parallelism's width.
    public func program(_ address: UInt32, _ bytes: [UInt8], progress: (Int) -> Void = { _ in }) throws(STM32Error) {
        try unlock()
        try writeControl(Self.pg | psize)
        let width = parallelism
        var data = bytes
        while data.count % width != 0 { data.append(0xFF) }
        var offset = 0
        while offset < data.count {
            let n = min(width == 1 ? 64 : STLink.chunk, data.count - offset)
            let at = address + UInt32(offset), block = Array(data[offset..<offset + n])
            try stlink { () throws(STLinkError) in
                switch width {
                case 4: try link.write32(at, block)
                case 2: try link.write16(at, block)
                default: try link.write8(at, block)
                }
            }
            offset += n
            progress(offset)
        }
        try waitWhileBusy(worstCaseMilliseconds: max(1, behaviour.programMicroseconds / 1000), operation: "programming flash")
        try writeControl(Self.lock)
    }

    /// RDP back to 0xAA through OPTCR (RM0368 §3.6.3: leaving level 1 mass-erases the flash), then a
    /// reset so the option bytes load.
    public func removeReadProtection() throws(STM32Error) -> String {
        if try readProtectionLevel() == 0xCC {
            throw .controller("the chip is at read protection level 2 (RDP 0xCC), which is permanent: nothing can remove it")
        }
        try unlock()
        try unlockController(control: Self.optionControlRegister, keys: Self.optionKeyRegister, lockBit: Self.optlock,
                             first: Self.optionKey1, second: Self.optionKey2, what: "FLASH_OPTCR")
        let options = try stlink { () throws(STLinkError) in try link.readWord(Self.optionControlRegister) }
        let level0 = options & ~0xFF03 | 0xAA << 8
        try stlink { () throws(STLinkError) in
            try link.writeWord(Self.optionControlRegister, level0)
            try link.writeWord(Self.optionControlRegister, level0 | Self.optstrt)
        }
        try waitWhileBusy(worstCaseMilliseconds: behaviour.massEraseMilliseconds, operation: "setting RDP to level 0 (mass erase)")
        try stlink { () throws(STLinkError) in
            try link.writeWord(Self.optionControlRegister, level0 | Self.optlock)
            try link.writeWord(Self.controlRegister, Self.lock)
            try link.resetSystem()
        }
        return "RDP back to level 0 (0xAA) through FLASH_OPTCR: the chip mass-erased its flash"
    }

    // MARK: Controller

    /// PSIZE (CR bits 9:8): 0 for x8, 1 for x16, 2 for x32.
    private var psize: UInt32 { UInt32(parallelism == 4 ? 2 : parallelism - 1) << 8 }

    private func readProtectionLevel() throws(STM32Error) -> UInt8 {
        UInt8(try stlink { () throws(STLinkError) in try link.readWord(Self.optionControlRegister) } >> 8 & 0xFF)
    }

    private func unlock() throws(STM32Error) {
        try unlockController(control: Self.controlRegister, keys: Self.keyRegister, lockBit: Self.lock)
    }

    private func writeControl(_ value: UInt32) throws(STM32Error) {
        try stlink { () throws(STLinkError) in try link.writeWord(Self.controlRegister, value) }
    }

    /// Polls SR.BSY, then checks and clears the error flags, each named as RM0368 §3.8.4 describes it.
    private func waitWhileBusy(worstCaseMilliseconds: Int, operation: String) throws(STM32Error) {
        let status = try pollWhileBusy(status: Self.statusRegister, busyBit: Self.bsy, worstCaseMilliseconds: worstCaseMilliseconds, operation: operation)
        guard status & Self.errors != 0 else { return }
        try stlink { () throws(STLinkError) in try link.writeWord(Self.statusRegister, Self.errors | Self.eop) }
        let reason: String
        if status & Self.wrperr != 0 { reason = "write protection refused" }
        else if status & Self.pgaerr != 0 { reason = "an access crossed a programming boundary (PGAERR) while" }
        else if status & Self.pgperr != 0 { reason = "the access width did not match PSIZE (PGPERR) while" }
        else if status & Self.pgserr != 0 { reason = "the controller saw a sequence error (PGSERR) while" }
        else { reason = "the controller reported an error (SR " + String(cFormat: "0x%08X", status) + ") while" }
        throw .controller("\(reason) \(operation)")
    }
}
