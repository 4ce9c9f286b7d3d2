import Bootloaders
import Parts
import Transport

/// ST's system bootloader in DFU mode (0483:DF11, "STM32  BOOTLOADER", DfuSe: UM0424 and AN3156) on a
/// simulated STM32, in ROM so that all of flash is the application's. Alternate setting 0 is the
/// internal flash (its layout in the interface string), 1 the option bytes (read only here). Commands go
/// in DFU_DNLOAD block 0 — Set Address Pointer (0x21), Erase (0x41, a unit's address, or none for all)
/// — and are carried out at DFU_GETSTATUS, as data blocks 2, 3, … are, each at the pointer plus
/// (block − 2) × wTransferSize; DFU_UPLOAD block 0 lists the commands, blocks from 2 read the same way.
/// A zero-length download leaves for the application at the pointer (the device is then gone). Under
/// read protection the flash interface refuses erases and programs and reads fault: the bootloader
/// answers errVENDOR.
public final class SimulatedDfuSe: SimulatedSTM32DFU {
    public static let functional = DFUFunctionalDescriptor(attributes: 0x0B, detachTimeoutMilliseconds: 255, transferSize: 2048, version: 0x011A)
    public let layout: DfuSeMemoryLayout
    public private(set) var unitsErased = 0

    private enum Pending { case command([UInt8]), write(UInt32, [UInt8]) }
    private var pending: Pending?
    /// What the work the last download asked ended in, told at the DFU_GETSTATUS after dfuDNBUSY.
    private var outcome: DFUStatus?
    private var pointer: UInt32 = SimulatedSTM32.flashBase

    public init(chip: SimulatedSTM32, vendorID: UInt16 = 0x0483, productID: UInt16 = 0xDF11) {
        let sizes: [Int]
        switch chip.model.controller {
        case let .f1(pageSize, _, _, _, _): sizes = [Int](repeating: pageSize, count: chip.flashSize / pageSize)
        case let .f4(sectors, _, _, _): sizes = sectors
        }
        layout = DfuSeMemoryLayout(name: "Internal Flash", base: SimulatedSTM32.flashBase, sizes: sizes)
        let description = USBDeviceDescription(vendorID: vendorID, productID: productID, manufacturer: "STMicroelectronics",
                                               product: "STM32  BOOTLOADER", serialNumber: "365A38743234", deviceRelease: 0x2200)
        super.init(chip: chip, descriptors: SimulatedDescriptors(description: description, interfaces: [
            SimulatedDescriptors.dfuInterface(settings: [layout.text, DfuSeMemoryLayout(name: "Option Bytes", base: chip.model.family.optionBytes.address,
                                                                                        sizes: [chip.model.family.optionBytes.length]).text],
                                              functional: Self.functional),
        ]))
    }

    private var transferSize: UInt32 { UInt32(Self.functional.transferSize) }

    override func download(block: UInt16, _ data: [UInt8], timeoutMilliseconds: Int) throws(USBError) {
        guard state == .idle || state == .downloadIdle else { throw stall(DFURequest.download.rawValue) }
        if data.isEmpty {
            state = .manifestSync
        } else if block == 0 {
            (pending, state) = (.command(data), .downloadSync)
        } else if block >= 2, alternateSetting == 0 {
            (pending, state) = (.write(pointer + UInt32(block - 2) * transferSize, data), .downloadSync)
        } else {
            throw stall(DFURequest.download.rawValue, block == 1 ? .stalledPacket : .target)
        }
    }

    /// DFU_GETSTATUS after a download: the first answers dfuDNBUSY, the work done (its time spent
    /// before the answer, so the poll timeout is 0); the next dfuDNLOAD-IDLE, or dfuERROR with what failed.
    override func statusRequested(timeoutMilliseconds: Int) throws(USBError) {
        switch state {
        case .downloadBusy:
            state = .downloadIdle
            if let outcome, outcome != .ok { fail(outcome) }
            outcome = nil
        case .downloadSync:
            guard let work = pending else { return }
            pending = nil
            state = .downloadIdle
            defer { (outcome, status, state) = (status, .ok, .downloadBusy) }
            switch work {
            case let .command(bytes): run(bytes)
            case let .write(address, data):
                try link.flashWrite(timeoutMilliseconds: timeoutMilliseconds)
                let end = address + UInt32(data.count)
                guard address >= layout.base, end <= layout.base + UInt32(layout.size) else { return fail(.address) }
                guard chip.selfProgram(address, data) else { return fail(chip.isReadProtected ? .vendor : .program) }
                blocksWritten += 1
            }
        case .manifestSync:
            state = .manifest
            chip.reset()
            hasLeft = true
        default:
            break
        }
    }

    private func run(_ command: [UInt8]) {
        func address() -> UInt32? {
            guard command.count == 5 else { return nil }
            return (1...4).reduce(UInt32(0)) { $0 | UInt32(command[$1]) << (8 * UInt32($1 - 1)) }
        }
        switch command[0] {
        case 0x21:
            guard let at = address() else { return fail(.address) }
            pointer = at
        case 0x41 where command.count == 1:
            for unit in layout.units where !erase(unit) { return fail(chip.isReadProtected ? .vendor : .erase) }
        case 0x41:
            guard let at = address(), let unit = layout.units.first(where: { $0.address == at }) else { return fail(.address) }
            if !erase(unit) { fail(chip.isReadProtected ? .vendor : .erase) }
        default:
            fail(.vendor)
        }
    }

    private func erase(_ unit: DfuSeMemoryLayout.Unit) -> Bool {
        guard unit.erasable, chip.selfErase(unitAt: unit.address) else { return false }
        unitsErased += 1
        return true
    }

    override func upload(block: UInt16, length: Int) throws(USBError) -> [UInt8] {
        guard state == .idle || state == .uploadIdle else { throw stall(DFURequest.upload.rawValue) }
        if block == 0 { return [0x00, 0x21, 0x41, 0x92].prefix(length).map { $0 } }
        guard block >= 2 else { throw stall(DFURequest.upload.rawValue) }
        let start = pointer + UInt32(block - 2) * UInt32(length)
        let options = chip.model.family.optionBytes
        let (base, size) = alternateSetting == 0 ? (layout.base, layout.size) : (options.address, options.length)
        guard start >= base, start < base + UInt32(size) else {
            state = .idle
            return []
        }
        let count = min(length, Int(base + UInt32(size) - start))
        guard let bytes = chip.read(start, count: count) else { throw stall(DFURequest.upload.rawValue, .vendor) }
        state = count < length ? .idle : .uploadIdle
        return bytes
    }

    override func aborted() { (pending, outcome) = (nil, nil) }
}
