import Transport

/// An ST-Link/V2 answering its 16-byte command blocks on simulated full-speed bulk endpoints, wired by
/// SWD to a ``SimulatedSTM32``. It reports its firmware version, mode and the target voltage, enters
/// SWD, reads the IDCODE, performs 8/16/32-bit memory accesses through the access port (recording the
/// last transfer's status), writes debug registers, and resets or runs the core.
public final class SimulatedSTLink: USBDevice {
    public let description: USBDeviceDescription
    public let target: SimulatedSTM32
    private let clock: VirtualClock

    /// Firmware version: 2 (ST-Link), JTAG API version, SWIM version. V2J37S7 by default.
    public var firmware = (stlink: 2, jtag: 37, swim: 7)
    /// What the ST-Link measures on its target voltage pin.
    public var targetVolts = 3.27
    /// The SWD wires reach the target (false: no target, or SWDIO and SWCLK swapped).
    public var swdConnected = true
    /// Fault: the ST-Link is unplugged after this many memory writes into flash (programming blocks).
    public var unplugAfterWrites: Int?
    /// Whether the simulated bus time of each bulk transfer counts; false behind a real USB stack (a
    /// gadget), where the kernel carries the packets.
    public var carriesUSBTiming = true

    /// For a device side that must know how much to take from the bus: the data bytes a memory-write
    /// command still waits for (nil: the next transfer is a command).
    public var awaitedDataBytes: Int? { pendingWrite.map { $0.count - pendingData.count } }
    /// The bytes the last command has ready for the host to read.
    public var pendingReplyCount: Int { reply.count }

    public private(set) var transfers = 0
    private var writes = 0
    private var unplugged = false
    private var inDebugMode = false
    private var swdKilohertz = 1800
    private var reply: [UInt8] = []
    private var pendingWrite: (address: UInt32, count: Int, width: Int)?
    private var pendingData: [UInt8] = []
    private var lastStatus: UInt8 = 0x80
    private var lastFaultAddress: UInt32 = 0

    public init(target: SimulatedSTM32, serialNumber: String = "2C1219002B135937334D4E00") {
        self.target = target
        clock = target.clock
        description = USBDeviceDescription(vendorID: 0x0483, productID: 0x3748, manufacturer: "STMicroelectronics", product: "STM32 STLink",
                                           serialNumber: serialNumber, deviceRelease: 0x0100, busNumber: 1, deviceAddress: 6, portPath: "1-3")
    }

    public func controlIn(request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] { throw .stall(request: request) }
    public func controlOut(request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int { throw .stall(request: request) }
    public func close() {}
    public func unplug() { unplugged = true }

    public func bulkWrite(endpoint: UInt8, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        if unplugged { throw .noDevice }
        transfers += 1
        carry(data.count)
        if let pending = pendingWrite {
            pendingData += data
            if pendingData.count >= pending.count {
                if isFlash(pending.address) { writes += 1 }
                if let limit = unplugAfterWrites, writes > limit { unplugged = true; throw .noDevice }
                performWrite(pending.address, Array(pendingData.prefix(pending.count)), width: pending.width)
                pendingWrite = nil
                pendingData = []
            }
            return data.count
        }
        execute(data)
        return data.count
    }

    public func bulkRead(endpoint: UInt8, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        if unplugged { throw .noDevice }
        transfers += 1
        guard !reply.isEmpty else {
            clock.advance(nanoseconds: UInt64(timeoutMilliseconds) * 1_000_000)
            throw .timeout(milliseconds: timeoutMilliseconds)
        }
        let out = Array(reply.prefix(length))
        reply = []
        carry(out.count)
        return out
    }

    // MARK: Commands

    private func execute(_ cdb: [UInt8]) {
        switch cdb[0] {
        case 0xF1:
            let v = firmware
            reply = [UInt8(v.stlink << 4 | v.jtag >> 2), UInt8((v.jtag & 3) << 6 | v.swim), 0x83, 0x04, 0x48, 0x37]
        case 0xF5: reply = [inDebugMode ? 0x02 : 0x01, 0x00]
        case 0xF7:
            // adc0 = 1.2 V reference reading, adc1 = half the target voltage, as the firmware reports them.
            let adc0: UInt32 = 1490
            let adc1 = UInt32(targetVolts / 2.4 * Double(adc0))
            reply = le32(adc0) + le32(adc1)
        case 0xF3: break
        case 0xF2: debug(cdb)
        default: reply = []
        }
    }

    private func debug(_ cdb: [UInt8]) {
        let sub = cdb[1]
        let address = UInt32(cdb[2]) | UInt32(cdb[3]) << 8 | UInt32(cdb[4]) << 16 | UInt32(cdb[5]) << 24
        let length = Int(cdb[6]) | Int(cdb[7]) << 8
        switch sub {
        case 0x30 where cdb[2] == 0xA3:
            inDebugMode = true
            reply = [0x80, 0x00]
        case 0x21:
            inDebugMode = false
        case 0x43:
            guard firmware.stlink >= 3 || firmware.jtag >= 22 else { reply = [0x81, 0]; return }
            swdKilohertz = [0: 4000, 1: 1800, 2: 1200, 3: 950, 7: 480, 15: 240, 31: 125, 40: 100, 79: 50, 158: 25, 265: 15, 798: 5][Int(cdb[2]) | Int(cdb[3]) << 8] ?? 1800
            reply = [0x80, 0x00]
        case 0x31:
            let idcode = swdConnected ? target.debugPortIDCode : 0
            reply = [swdConnected ? 0x80 : 0x16, 0, 0, 0] + le32(idcode) + [0, 0, 0, 0]
        case 0x07, 0x0C, 0x47:
            swd(words: (length + 3) / 4)
            if swdConnected, let data = target.read(address, count: length) {
                reply = data
                lastStatus = 0x80
            } else {
                reply = [UInt8](repeating: 0, count: length)
                lastStatus = swdConnected ? 0x11 : 0x16
                lastFaultAddress = address
            }
        case 0x08, 0x0D, 0x48:
            if sub == 0x48 && firmware.stlink < 3 && firmware.jtag < 26 { reply = []; return }   // unknown to old firmware
            pendingWrite = (address, length, sub == 0x08 ? 4 : (sub == 0x48 ? 2 : 1))
            pendingData = []
        case 0x3E:
            reply = [lastStatus, 0, 0, 0] + le32(lastStatus == 0x80 ? 0 : lastFaultAddress) + [0, 0, 0, 0]
            lastStatus = 0x80
        case 0x3B:
            reply = [lastStatus, 0]
        case 0x35:   // write a debug register: address, then the 32-bit value
            swd(words: 2)
            let value = UInt32(cdb[6]) | UInt32(cdb[7]) << 8 | UInt32(cdb[8]) << 16 | UInt32(cdb[9]) << 24
            reply = [swdConnected && target.write(address, le32(value), width: 4) ? 0x80 : 0x16, 0]
        case 0x36:   // read a debug register: status word, then the value
            swd(words: 2)
            if swdConnected, let bytes = target.read(address, count: 4) {
                reply = [0x80, 0, 0, 0] + bytes
            } else {
                reply = [swdConnected ? 0x11 : 0x16, 0, 0, 0, 0, 0, 0, 0]
            }
        case 0x32:
            target.reset()
            reply = [0x80, 0]
        case 0x09:
            reply = [0x80, 0]
        default:
            reply = [0x80, 0]
        }
    }

    private func isFlash(_ address: UInt32) -> Bool {
        address >= SimulatedSTM32.flashBase && address < SimulatedSTM32.flashBase + UInt32(target.flashSize)
    }

    private func performWrite(_ address: UInt32, _ bytes: [UInt8], width: Int) {
        // Into flash, each access's SWD time hides behind the previous half-word's programming (the AHB
        // stalls while the controller is busy); elsewhere it adds up.
        let intoFlash = isFlash(address)
        if !intoFlash { swd(words: (bytes.count + 3) / 4 * (width == 2 ? 2 : 1)) }
        if swdConnected, target.write(address, bytes, width: width) {
            lastStatus = 0x80
        } else {
            lastStatus = swdConnected ? 0x11 : 0x16
            lastFaultAddress = address
        }
    }

    // MARK: Timing

    /// Full-speed bulk (USB 2.0 §5.8): 64-byte packets of about 50 µs each on the 12 Mbit/s bus, with
    /// a 125 µs turnaround per transfer for the host controller's scheduling.
    private func carry(_ bytes: Int) {
        guard carriesUSBTiming else { return }
        clock.advance(nanoseconds: 125_000 + UInt64(max(1, (bytes + 63) / 64)) * 50_000)
    }

    /// An SWD access port transfer of a 32-bit word: 8 request bits, turnaround, 3 acknowledge bits,
    /// 32 data bits and parity, turnaround (ARM Debug Interface v5 §4.2): 46 clocks.
    private func swd(words: Int) {
        clock.advance(nanoseconds: UInt64(words) * 46 * 1_000_000 / UInt64(swdKilohertz))
    }

    private func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24)] }
}
