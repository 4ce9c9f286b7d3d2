import Foundation
import Parts

/// What an STM32 answers about itself.
public struct STM32Target: Sendable, Hashable {
    /// The SW-DP IDCODE.
    public let debugPortIDCode: UInt32
    /// DEV_ID of DBGMCU_IDCODE.
    public let chipID: UInt16
    public let revision: UInt16
    public let chip: STM32Chip
    /// From the flash size register, in bytes.
    public let flashSize: Int

    /// "STM32F10x medium-density, 64 KiB flash in 1024-byte pages (chip id 0x410, rev 0x2003)"
    public var summary: String {
        "\(chip.name), \(flashSize / 1024) KiB flash in \(chip.pageSize)-byte pages (chip id " + String(format: "0x%03X, rev 0x%04X", chipID, revision) + ")" + (cloneName.map { "; \($0)" } ?? "")
    }

    /// Set when the debug port is not the one ST's silicon of this line has: the chip is a clone.
    public var cloneName: String? {
        guard debugPortIDCode != chip.genuineDebugPortIDCode else { return nil }
        let found = String(format: "0x%08X", debugPortIDCode), genuine = String(format: "0x%08X", chip.genuineDebugPortIDCode)
        if debugPortIDCode == 0x2BA0_1477 {
            return "a clone (CKS32F103, APM32F103 or similar: a Cortex-M4-class SW-DP IDCODE \(found) under an F1 chip id, where ST's answers \(genuine))"
        }
        return "a clone or an unknown core (SW-DP IDCODE \(found), where ST's answers \(genuine))"
    }
}

/// STM32F1 flash programming through an ST-Link: the flash controller of RM0008 §3 (keys, page and mass
/// erase, half-word programming, option bytes) and the read-protection removal that `stm32f1x unlock`
/// performs (erase the option bytes, program RDP = 0xA5, which mass-erases the chip, then reset).
public final class STM32F1Flash {
    public let link: STLink

    static let controller: UInt32 = 0x4002_2000
    static let keyRegister = controller + 0x04, optionKeyRegister = controller + 0x08
    static let statusRegister = controller + 0x0C, controlRegister = controller + 0x10
    static let addressRegister = controller + 0x14, optionByteRegister = controller + 0x1C
    static let key1: UInt32 = 0x4567_0123, key2: UInt32 = 0xCDEF_89AB
    static let optionBytes: UInt32 = 0x1FFF_F800
    // CR bits.
    static let pg: UInt32 = 0x01, per: UInt32 = 0x02, mer: UInt32 = 0x04, optpg: UInt32 = 0x10, opter: UInt32 = 0x20
    static let strt: UInt32 = 0x40, lock: UInt32 = 0x80, optwre: UInt32 = 0x200
    // SR bits.
    static let bsy: UInt32 = 0x01, pgerr: UInt32 = 0x04, wrprterr: UInt32 = 0x10, eop: UInt32 = 0x20

    public init(link: STLink) { self.link = link }

    /// Reads DBGMCU_IDCODE and the flash size register.
    public func identify(debugPortIDCode: UInt32) throws(STM32Error) -> STM32Target {
        let idcode = try stlink { () throws(STLinkError) in try link.readWord(STM32Chip.idcodeRegister) }
        let chipID = UInt16(idcode & 0xFFF)
        guard chipID != 0 else { throw .link(.noTarget(detail: "the chip id reads 0x000")) }
        guard let chip = PartCatalog.stm32Chip(id: chipID) else { throw .unknownChip(chipID) }
        let sizeWord = try stlink { () throws(STLinkError) in try link.readWord(STM32Chip.flashSizeRegister) }
        let kib = Int(sizeWord & 0xFFFF)
        let flashSize = kib == 0 || kib == 0xFFFF ? chip.maximumFlash : kib * 1024
        return STM32Target(debugPortIDCode: debugPortIDCode, chipID: chipID, revision: UInt16(idcode >> 16), chip: chip, flashSize: flashSize)
    }

    /// OBR.RDPRT: debug access to flash is blocked.
    public func isReadProtected() throws(STM32Error) -> Bool {
        try stlink { () throws(STLinkError) in try link.readWord(Self.optionByteRegister) } & 0x02 != 0
    }

    /// The 16 option bytes (readable even under read protection).
    public func readOptionBytes() throws(STM32Error) -> [UInt8] {
        try stlink { () throws(STLinkError) in try link.read32(Self.optionBytes, count: 16) }
    }

    /// Reads flash.
    public func read(_ address: UInt32, count: Int) throws(STM32Error) -> [UInt8] {
        try stlink { () throws(STLinkError) in try link.read32(address, count: count) }
    }

    /// Erases the pages covering `range` (page-aligned starts).
    public func erasePages(_ pages: [UInt32], progress: (Int) -> Void = { _ in }) throws(STM32Error) {
        try unlock()
        for (i, page) in pages.enumerated() {
            try writeControl(Self.per)
            try stlink { () throws(STLinkError) in try link.writeWord(Self.addressRegister, page) }
            try writeControl(Self.per | Self.strt)
            try waitWhileBusy(worstCaseMilliseconds: 40, operation: String(format: "erasing the page at 0x%08X", page))
            progress(i + 1)
        }
        try writeControl(0)
    }

    /// Programs `bytes` at `address` half-word by half-word with PG set. The bus stalls while each
    /// half-word programs, so a block write runs at the flash's own speed.
    public func program(_ address: UInt32, _ bytes: [UInt8], progress: (Int) -> Void = { _ in }) throws(STM32Error) {
        try unlock()
        try writeControl(Self.pg)
        var data = bytes
        if data.count % 2 == 1 { data.append(0xFF) }
        var offset = 0
        while offset < data.count {
            let n = min(STLink.chunk, data.count - offset)
            let at = address + UInt32(offset)
            try stlink { () throws(STLinkError) in try link.write16(at, Array(data[offset..<offset + n])) }
            offset += n
            progress(offset)
        }
        try waitWhileBusy(worstCaseMilliseconds: 1, operation: "programming flash")
        try writeControl(0)
    }

    /// Removes read protection as openocd's `stm32f1x unlock` does: erase the option bytes, program
    /// RDP = 0xA5 (the chip mass-erases its flash), then reset so the option bytes load.
    public func removeReadProtection() throws(STM32Error) {
        try unlock()
        try stlink { () throws(STLinkError) in
            try link.writeWord(Self.optionKeyRegister, Self.key1)
            try link.writeWord(Self.optionKeyRegister, Self.key2)
        }
        try writeControl(Self.opter | Self.optwre)
        try writeControl(Self.opter | Self.strt | Self.optwre)
        try waitWhileBusy(worstCaseMilliseconds: 40, operation: "erasing the option bytes")
        try writeControl(Self.optpg | Self.optwre)
        try stlink { () throws(STLinkError) in try link.write16(Self.optionBytes, [0xA5, 0x00]) }
        try waitWhileBusy(worstCaseMilliseconds: 100, operation: "programming RDP (mass erase)")
        try writeControl(0)
        try stlink { () throws(STLinkError) in try link.resetSystem() }
    }

    // MARK: Controller

    private func unlock() throws(STM32Error) {
        let control = try stlink { () throws(STLinkError) in try link.readWord(Self.controlRegister) }
        guard control & Self.lock != 0 else { return }
        try stlink { () throws(STLinkError) in
            try link.writeWord(Self.keyRegister, Self.key1)
            try link.writeWord(Self.keyRegister, Self.key2)
        }
        let after = try stlink { () throws(STLinkError) in try link.readWord(Self.controlRegister) }
        if after & Self.lock != 0 { throw .controller("the flash controller stayed locked after the key sequence") }
    }

    private func writeControl(_ value: UInt32) throws(STM32Error) {
        try stlink { () throws(STLinkError) in try link.writeWord(Self.controlRegister, value) }
    }

    /// Polls SR.BSY, bounded by twice the datasheet's worst case, then checks and clears the error flags.
    private func waitWhileBusy(worstCaseMilliseconds: Int, operation: String) throws(STM32Error) {
        let start = link.time.now
        var status: UInt32
        repeat {
            status = try stlink { () throws(STLinkError) in try link.readWord(Self.statusRegister) }
            if link.time.elapsed(since: start) > UInt64(worstCaseMilliseconds) * 2_000_000 + 50_000_000 {
                throw .controller("the flash controller stayed busy while \(operation)")
            }
        } while status & Self.bsy != 0
        if status & (Self.pgerr | Self.wrprterr) != 0 {
            try stlink { () throws(STLinkError) in try link.writeWord(Self.statusRegister, Self.pgerr | Self.wrprterr | Self.eop) }
            throw .controller(status & Self.wrprterr != 0 ? "write protection refused \(operation)" : "programming error while \(operation) (a half-word was not erased)")
        }
    }

    private func stlink<T>(_ body: () throws(STLinkError) -> T) throws(STM32Error) -> T {
        do { return try body() } catch { throw .link(error) }
    }
}

/// Why STM32 flash programming failed.
public enum STM32Error: Error, Equatable, Sendable, CustomStringConvertible {
    case link(STLinkError)
    case unknownChip(UInt16)
    case controller(String)

    public var description: String {
        switch self {
        case let .link(error): return error.description
        case let .unknownChip(id): return String(format: "chip id 0x%03X is no STM32F1 line bootmedic knows", id)
        case let .controller(text): return text
        }
    }
}
