import AVRISP
import Parts
import Simulation
import STLink
import Transport

extension FuzzTarget {
    /// Starting inputs that need no file: the answers a simulated programmer (one avrdude and st-flash
    /// accept) gives in the session the target runs, and typical udev and journal entries. The file
    /// targets are seeded from real files by `make fuzz`.
    public var builtInSeeds: [[UInt8]] {
        switch self {
        case .intelHex, .toml, .rules: return []
        case .stk500v1, .busPirate: return [serialSession()]
        case .stlink: return [stlinkSession()]
        case .udev:
            return [
                ["SUBSYSTEM=usb", "DEVTYPE=usb_device", "ID_VENDOR_ID=16c0", "ID_MODEL_ID=05dc", "ID_SERIAL_SHORT=0001", "ID_PATH=pci-0000:00:14.0-usb-0:2", "BUSNUM=001", "DEVNUM=007"],
                ["SUBSYSTEM=tty", "DEVNAME=/dev/ttyACM0", "ID_VENDOR_ID=2341", "ID_MODEL_ID=0043", "ID_MODEL=Arduino_Uno", "BUSNUM=003", "DEVNUM=012"],
            ].map { Array($0.joined(separator: "\0").utf8) }
        case .journal:
            return [Array("MESSAGE=restored ATmega328P in 9.2 s\nBOOTMEDIC_JOB=20261129-0001\nBOOTMEDIC_PROGRAMMER=usbasp\nBOOTMEDIC_PORT=1-2\nBOOTMEDIC_RESULT=restored\nBOOTMEDIC_PART=atmega328p".utf8)]
        }
    }

    /// What the simulated programmer answered over the session ``FuzzTarget/run(_:)`` drives.
    private func serialSession() -> [UInt8] {
        let clock = VirtualClock()
        let chip = SimulatedAVR(part: PartCatalog.avrParts.first { $0.id == "atmega328p" }!, clock: clock)
        let link = RecordingSerialLink(simulatedSerialProgrammer(self == .busPirate ? .buspirate : .stk500v1, chip: chip))
        let programmer: ISPProgrammer = self == .busPirate ? BusPirate(link: link, time: clock) : STK500v1(link: link, flavor: .arduinoISP, time: clock)
        try? programmer.enterProgrammingMode()
        for index: UInt8 in 0..<3 { _ = try? programmer.transfer(.readSignature(index)) }
        programmer.leaveProgrammingMode()
        return link.heard
    }

    private func stlinkSession() -> [UInt8] {
        guard let bench = try? SimulatedSTM32Bench() else { return [] }
        let device = RecordingUSBDevice(bench.device)
        let link = STLink(device: device, time: bench.clock)
        _ = try? link.connect()
        _ = try? link.halt()
        _ = try? link.readWord(0xE004_2000)
        _ = try? link.read32(0x0800_0000, count: 64)
        return device.heard
    }
}

/// A serial line to a simulator that keeps every byte the driver read.
private final class RecordingSerialLink: SerialLink {
    private let simulator: SerialProgrammerSimulator
    private var pending: [UInt8] = []
    private(set) var heard: [UInt8] = []
    let path = "/dev/seed"

    init(_ simulator: SerialProgrammerSimulator) { self.simulator = simulator }

    func write(_ bytes: [UInt8], timeoutMilliseconds: Int) throws(SerialError) { pending += simulator.receive(bytes) }

    func read(count: Int, timeoutMilliseconds: Int) throws(SerialError) -> [UInt8] {
        let taken = Array(pending.prefix(count))
        pending.removeFirst(taken.count)
        heard += taken
        guard taken.count == count else { throw .timeout(path: path, expected: count, received: taken, milliseconds: timeoutMilliseconds) }
        return taken
    }

    /// The fuzz line's drain hears nothing, so neither is a drained byte part of the seed.
    func drain(quietMilliseconds: Int, limitMilliseconds: Int) throws(SerialError) -> [UInt8] {
        defer { pending.removeAll() }
        return pending
    }

    func setModemLines(dtr: Bool, rts: Bool) -> Bool { true }
    func close() {}
}

/// A USB device that keeps every byte of its IN transfers.
private final class RecordingUSBDevice: USBDevice {
    private let device: USBDevice
    private(set) var heard: [UInt8] = []

    init(_ device: USBDevice) { self.device = device }

    var description: USBDeviceDescription { device.description }

    func controlIn(request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        let bytes = try device.controlIn(request: request, value: value, index: index, length: length, timeoutMilliseconds: timeoutMilliseconds)
        heard += bytes
        return bytes
    }

    func controlOut(request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        try device.controlOut(request: request, value: value, index: index, data: data, timeoutMilliseconds: timeoutMilliseconds)
    }

    func bulkWrite(endpoint: UInt8, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        try device.bulkWrite(endpoint: endpoint, data: data, timeoutMilliseconds: timeoutMilliseconds)
    }

    func bulkRead(endpoint: UInt8, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        let bytes = try device.bulkRead(endpoint: endpoint, length: length, timeoutMilliseconds: timeoutMilliseconds)
        heard += bytes
        return bytes
    }

    func close() { device.close() }
}
