import Parts

/// What a bootloader running on a simulated STM32 does to its own flash: the same flash interface
/// registers a debugger drives (RM0008 §3 on the F1, RM0368 §3 on the F4), from the core instead of the
/// access port, so erase and program times, locking and read protection behave as they do for SWD.
extension SimulatedSTM32 {
    private var flashRegisters: (keys: UInt32, status: UInt32, control: UInt32, address: UInt32, busy: UInt32) {
        switch model.controller {
        case .f1: return (0x4002_2004, 0x4002_200C, 0x4002_2010, 0x4002_2014, 1 << 0)
        case .f4: return (0x4002_3C04, 0x4002_3C0C, 0x4002_3C10, 0, 1 << 16)
        }
    }

    private func storeWord(_ address: UInt32, _ value: UInt32) -> Bool {
        write(address, [UInt8(value & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value >> 16 & 0xFF), UInt8(value >> 24)], width: 4)
    }

    private func loadWord(_ address: UInt32) -> UInt32 {
        (read(address, count: 4) ?? [0, 0, 0, 0]).enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
    }

    /// Unlocks the controller and runs `body`, waiting out the operation it starts; false when the
    /// controller reports an error (write protection, read protection) or a write faults.
    private func withUnlockedFlash(_ body: () -> Bool) -> Bool {
        let r = flashRegisters
        _ = storeWord(r.keys, 0x4567_0123)
        _ = storeWord(r.keys, 0xCDEF_89AB)
        _ = storeWord(r.status, 0xFF)   // clear the sticky error and end-of-operation flags
        let done = body()
        stallWhileBusy()
        let errors = loadWord(r.status) & (model.family.id == .f1 ? 0x14 : 0xF2)
        _ = storeWord(r.control, model.family.id == .f1 ? 0x80 : 0x8000_0000)   // LOCK
        return done && errors == 0
    }

    /// Erases the page or sector that starts at `address`; false when the chip refuses.
    public func selfErase(unitAt address: UInt32) -> Bool {
        let r = flashRegisters
        switch model.controller {
        case .f1:
            return withUnlockedFlash {
                storeWord(r.control, 0x02) && storeWord(r.address, address) && storeWord(r.control, 0x42)
            }
        case let .f4(sectors, _, _, _):
            var starts: [UInt32] = [], next = Self.flashBase
            for size in sectors { starts.append(next); next += UInt32(size) }
            guard let sector = starts.firstIndex(of: address) else { return false }
            let control = 0x02 | UInt32(sector) << 3 | 2 << 8
            return withUnlockedFlash { storeWord(r.control, control) && storeWord(r.control, control | 1 << 16) }
        }
    }

    /// Programs `bytes` (erased flash) at `address` in half-words (F1) or words (F4, PSIZE x32); a short
    /// tail is padded with 0xFF.
    public func selfProgram(_ address: UInt32, _ bytes: [UInt8]) -> Bool {
        let r = flashRegisters
        let (control, width): (UInt32, Int) = model.family.id == .f1 ? (0x01, 2) : (0x01 | 2 << 8, 4)
        let padded = bytes + [UInt8](repeating: 0xFF, count: (width - bytes.count % width) % width)
        return withUnlockedFlash { storeWord(r.control, control) && write(address, padded, width: width) }
    }
}
