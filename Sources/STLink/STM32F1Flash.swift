import BenchModel
import FoundationEssentials
import Parts

/// STM32F1 flash programming through an ST-Link: the flash controller of RM0008 §3 (keys, page and mass
/// erase, half-word programming, option bytes) and the read-protection removal that `stm32f1x unlock`
/// performs (erase the option bytes, program RDP = 0xA5, which mass-erases the chip, then reset). The
/// F1's clones share the register map; their differences (a GD32's word programming, its pages and
/// slower erases) come from the target's ``STM32Variant``.
public final class STM32F1Flash: STM32FlashController {
    public let link: STLink
    public let target: STM32Target
    private var family: STM32Family { target.family }
    private var behaviour: STM32Variant.FlashBehaviour { target.variant.flash }

    static let controller: UInt32 = 0x4002_2000
    static let keyRegister = controller + 0x04, optionKeyRegister = controller + 0x08
    static let statusRegister = controller + 0x0C, controlRegister = controller + 0x10
    static let addressRegister = controller + 0x14, optionByteRegister = controller + 0x1C
    // CR bits.
    static let pg: UInt32 = 0x01, per: UInt32 = 0x02, mer: UInt32 = 0x04, optpg: UInt32 = 0x10, opter: UInt32 = 0x20
    static let strt: UInt32 = 0x40, lock: UInt32 = 0x80, optwre: UInt32 = 0x200
    // SR bits.
    static let bsy: UInt32 = 0x01, pgerr: UInt32 = 0x04, wrprterr: UInt32 = 0x10, eop: UInt32 = 0x20

    public init(link: STLink, target: STM32Target) {
        self.link = link
        self.target = target
    }

    /// The access width flash is programmed with: a GD32 takes words, which any ST-Link firmware writes;
    /// ST's F1 takes half-words only.
    private var width: Int { behaviour.programWidths.first { $0 == 4 || link.canWriteHalfWords } ?? 2 }

    public var programmingDescription: String { width == 4 ? "in words" : "in half-words" }

    /// ST's F1 flash is programmed in half-words: firmware before J26 cannot write them.
    public func checkLink() throws(STM32Error) {
        if width == 2, !link.canWriteHalfWords {
            throw .link(.firmwareTooOld(version: link.version?.description ?? "?", needs: "16-bit memory writes (firmware J26 or later), which \(target.variant.name) flash programming needs"))
        }
    }

    /// OBR.RDPRT: debug access to flash is blocked.
    public func isReadProtected() throws(STM32Error) -> Bool {
        try stlink { () throws(STLinkError) in try link.readWord(Self.optionByteRegister) } & 0x02 != 0
    }

    /// The 16 option bytes (readable even under read protection).
    public func readOptionBytes() throws(STM32Error) -> [UInt8] {
        try stlink { () throws(STLinkError) in try link.read32(family.optionBytes.address, count: family.optionBytes.length) }
    }

    /// Reads flash.
    public func read(_ address: UInt32, count: Int) throws(STM32Error) -> [UInt8] {
        try stlink { () throws(STLinkError) in try link.read32(address, count: count) }
    }

    /// Erases pages one by one (PER with the page's address in AR).
    public func erase(_ units: [FlashGeometry.Unit], progress: (Int) -> Void = { _ in }) throws(STM32Error) {
        try unlock()
        for (i, page) in units.enumerated() {
            try writeControl(Self.per)
            try stlink { () throws(STLinkError) in try link.writeWord(Self.addressRegister, page.address) }
            try writeControl(Self.per | Self.strt)
            try waitWhileBusy(worstCaseMilliseconds: behaviour.eraseMilliseconds(unitSize: page.size), operation: String(cFormat: "erasing the page at 0x%08X", page.address))
            progress(i + 1)
        }
        try writeControl(0)
    }

    /// Programs `bytes` at `address` access by access with PG set. The bus stalls while each access
    /// programs, so a block write runs at the flash's own speed.
    public func program(_ address: UInt32, _ bytes: [UInt8], progress: (Int) -> Void = { _ in }) throws(STM32Error) {
        try unlock()
        try writeControl(Self.pg)
        let width = width
        var data = bytes
        while data.count % width != 0 { data.append(0xFF) }
        var offset = 0
        while offset < data.count {
            let n = min(STLink.chunk, data.count - offset)
            let at = address + UInt32(offset), block = Array(data[offset..<offset + n])
            try stlink { () throws(STLinkError) in
                if width == 4 { try link.write32(at, block) } else { try link.write16(at, block) }
            }
            offset += n
            progress(offset)
        }
        try waitWhileBusy(worstCaseMilliseconds: max(1, behaviour.programMicroseconds / 1000), operation: "programming flash")
        try writeControl(0)
    }

    /// Removes read protection as openocd's `stm32f1x unlock` does: erase the option bytes, program
    /// RDP = 0xA5 (the chip mass-erases its flash), then reset so the option bytes load.
    public func removeReadProtection() throws(STM32Error) -> String {
        try unlock()
        try stlink { () throws(STLinkError) in
            try link.writeWord(Self.optionKeyRegister, STM32FlashKeys.key1)
            try link.writeWord(Self.optionKeyRegister, STM32FlashKeys.key2)
        }
        try writeControl(Self.opter | Self.optwre)
        try writeControl(Self.opter | Self.strt | Self.optwre)
        try waitWhileBusy(worstCaseMilliseconds: behaviour.eraseMilliseconds(unitSize: 1024), operation: "erasing the option bytes")
        try writeControl(Self.optpg | Self.optwre)
        try stlink { () throws(STLinkError) in try link.write16(family.optionBytes.address, [0xA5, 0x00]) }
        try waitWhileBusy(worstCaseMilliseconds: behaviour.massEraseMilliseconds, operation: "programming RDP (mass erase)")
        try writeControl(0)
        try stlink { () throws(STLinkError) in try link.resetSystem() }
        return "option bytes erased, RDP = 0xA5: the chip mass-erased its flash"
    }

    // MARK: Controller

    private func unlock() throws(STM32Error) {
        try unlockController(control: Self.controlRegister, keys: Self.keyRegister, lockBit: Self.lock)
    }

    private func writeControl(_ value: UInt32) throws(STM32Error) {
        try stlink { () throws(STLinkError) in try link.writeWord(Self.controlRegister, value) }
    }

    /// Polls SR.BSY, then checks and clears the error flags.
    private func waitWhileBusy(worstCaseMilliseconds: Int, operation: String) throws(STM32Error) {
        let status = try pollWhileBusy(status: Self.statusRegister, busyBit: Self.bsy, worstCaseMilliseconds: worstCaseMilliseconds, operation: operation)
        if status & (Self.pgerr | Self.wrprterr) != 0 {
            try stlink { () throws(STLinkError) in try link.writeWord(Self.statusRegister, Self.pgerr | Self.wrprterr | Self.eop) }
            throw .controller(status & Self.wrprterr != 0 ? "write protection refused \(operation)" : "programming error while \(operation) (a location was not erased)")
        }
    }
}
