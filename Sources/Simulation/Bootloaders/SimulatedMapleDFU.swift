import Bootloaders
import Parts
import Transport

/// The STM32duino bootloader (LeafLabs' Maple DFU, 1EAF:0003) on a simulated STM32F103: DFU 1.1 with
/// three alternate settings — 0, the retired upload to RAM (refused), 1 and 2, the application at
/// 0x08005000 or 0x08002000. A download in dfuIDLE starts at the setting's application address whatever
/// the block number; each block is written at DFU_GETSTATUS, the page it starts erased first (through
/// the chip's flash interface). An upload reads blocks from the application address up to the end of
/// flash. A zero-length download ends the download (dfuMANIFEST-WAIT-RESET); a USB reset outside
/// dfuIDLE reboots the board, which then runs the application (the device is gone).
public final class SimulatedMapleDFU: SimulatedSTM32DFU {
    public static let settingNames = ["STM32duino bootloader v1.0  ERROR. Upload to RAM not supported.",
                                      "STM32duino bootloader v1.0  Upload to Flash 0x8005000",
                                      "STM32duino bootloader v1.0  Upload to Flash 0x8002000"]
    public static let functional = DFUFunctionalDescriptor(attributes: 0x03, detachTimeoutMilliseconds: 255, transferSize: 1024, version: 0x0110)

    private var pending: [UInt8]?
    private var written = 0
    private var uploadBlock = 0

    public init(chip: SimulatedSTM32) {
        let description = USBDeviceDescription(vendorID: 0x1EAF, productID: 0x0003, manufacturer: "LeafLabs", product: "Maple 003",
                                               serialNumber: "LLM 003", deviceRelease: 0x0201)
        super.init(chip: chip, descriptors: SimulatedDescriptors(description: description, interfaces: [
            SimulatedDescriptors.dfuInterface(settings: Self.settingNames, functional: Self.functional),
        ]))
    }

    /// Where the selected setting puts the application.
    private var applicationAddress: UInt32 { alternateSetting == 1 ? 0x0800_5000 : 0x0800_2000 }
    private var flashEnd: UInt32 { SimulatedSTM32.flashBase + UInt32(chip.flashSize) }

    override func download(block: UInt16, _ data: [UInt8], timeoutMilliseconds: Int) throws(USBError) {
        switch state {
        case .idle:
            guard !data.isEmpty else { return fail(.notDone) }
            guard alternateSetting != 0 else { return fail(.write) }
            written = 0
            if alternateSetting == 1 { _ = chip.selfErase(unitAt: 0x0800_2000) }   // so a cold boot knows which was loaded last
            (pending, state) = (data, .downloadSync)
        case .downloadIdle:
            if data.isEmpty {
                state = .manifestSync
            } else {
                (pending, state) = (data, .downloadSync)
            }
        default:
            throw stall(DFURequest.download.rawValue)
        }
    }

    override func statusRequested(timeoutMilliseconds: Int) throws(USBError) {
        switch state {
        case .downloadSync:
            guard let data = pending else { return }
            pending = nil
            try link.flashWrite(timeoutMilliseconds: timeoutMilliseconds)
            let address = applicationAddress + UInt32(written)
            guard address + UInt32(data.count) <= flashEnd, chip.selfErase(unitAt: address), chip.selfProgram(address, data) else {
                return fail(.write)
            }
            written += data.count
            blocksWritten += 1
            state = .downloadIdle
        case .manifestSync:
            state = .manifestWaitReset
        case .downloadIdle:
            state = .idle
        default:
            break
        }
    }

    override func upload(block: UInt16, length: Int) throws(USBError) -> [UInt8] {
        guard length > 0 else { throw stall(DFURequest.upload.rawValue, .notDone) }
        let start: UInt32
        switch state {
        case .idle:
            guard alternateSetting != 0 else { throw stall(DFURequest.upload.rawValue, .write) }
            uploadBlock = length
            start = applicationAddress + UInt32(length) * UInt32(block)
            state = .uploadIdle
        case .uploadIdle:
            start = applicationAddress + UInt32(uploadBlock) * UInt32(block)
            if start + UInt32(uploadBlock) > flashEnd { state = .idle }
        default:
            throw stall(DFURequest.upload.rawValue)
        }
        guard start < flashEnd else { return [] }
        let count = min(state == .uploadIdle ? uploadBlock : length, Int(flashEnd - start))
        return chip.read(start, count: count) ?? []
    }

    override func aborted() { pending = nil }

    override func busReset() {
        guard state != .idle else { return }
        chip.reset()
        hasLeft = true
    }
}
