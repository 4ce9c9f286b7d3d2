import BenchModel
import Parts
import Transport

/// Faults a rehearsal can inject, by the names `--fault` takes.
public enum SimulatedFault: String, CaseIterable, Sendable {
    /// Nothing on the ISP cable: MISO floats high and programming enable never echoes.
    case noTarget = "no-target"
    /// The cable's MISO is shorted low: every answer reads 0x00.
    case misoLow = "miso-low"
    /// The chip answers another part's signature.
    case wrongPart = "wrong-part"
    /// The target loses contact after half of the pages are written.
    case targetVanishes = "target-vanishes"
    /// The target loses contact as soon as its first fuse write has taken (the early CKDIV8 write of a
    /// clock raise, on a factory chip).
    case vanishesAfterFuseWrite = "vanishes-after-fuse-write"
    /// The chip answers programming enable after the erase, but the last signature byte comes back wrong.
    case garbledAfterErase = "garbled-after-erase"
    /// The programmer is pulled from USB in the middle of the flash write.
    case programmerUnplugged = "programmer-unplugged"
    /// The programmer stops answering in the middle of the flash write.
    case programmerHangs = "programmer-hangs"
    /// One read-back of written flash returns a flipped bit, once (a marginal cable).
    case flippedBit = "flipped-bit"
    /// A flash cell that cannot be programmed: verification fails every time.
    case stuckBit = "stuck-bit"
    /// The chip's fuses select a slow internal oscillator: only a slow SCK reaches it.
    case slowClock = "slow-clock"
    /// The chip's lock bits are set (mode 3): flash reads back as zeros until a chip erase.
    case locked
    /// Serial programmers: nothing answers the sync (no sketch loaded, wrong baud rate).
    case neverSyncs = "never-syncs"
    /// Serial programmers: the line carries noise.
    case garbage
    /// Serial programmers: answers come later than any driver waits.
    case slowAnswer = "slow-answer"
    /// ST-Link: SWDIO and SWCLK swapped (nothing answers on SWD).
    case swappedWires = "swapped-wires"
    /// ST-Link: the target has no supply.
    case noPower = "no-power"
    /// ST-Link: firmware V2J22, before 16-bit memory writes.
    case oldFirmware = "old-firmware"
    /// ST-Link: a clone STM32F103 (CKS32) that answers a different SW-DP IDCODE.
    case clone

    /// One line for `--help` and error messages.
    public var summary: String {
        switch self {
        case .noTarget: return "no target on the ISP cable"
        case .misoLow: return "MISO shorted low"
        case .wrongPart: return "the chip answers another part's signature"
        case .targetVanishes: return "the target loses contact halfway through the flash write"
        case .vanishesAfterFuseWrite: return "the target loses contact right after its first fuse write"
        case .garbledAfterErase: return "after the chip erase the chip answers, but its signature's last byte reads wrong"
        case .programmerUnplugged: return "the programmer is unplugged halfway through the flash write"
        case .programmerHangs: return "the programmer stops answering halfway through the flash write"
        case .flippedBit: return "one read-back returns a flipped bit, once"
        case .stuckBit: return "a flash cell cannot be programmed"
        case .slowClock: return "the chip runs from a slow internal oscillator (1 MHz, or 128 kHz on the ATmega328P)"
        case .locked: return "lock bits set: memory reads as zeros"
        case .neverSyncs: return "serial programmer that never answers"
        case .garbage: return "serial line carrying noise"
        case .slowAnswer: return "serial programmer answering too late"
        case .swappedWires: return "SWDIO and SWCLK swapped"
        case .noPower: return "target without power"
        case .oldFirmware: return "ST-Link firmware V2J22"
        case .clone: return "a Bluepill clone (a CKS32F103: SW-DP IDCODE 0x2BA01477)"
        }
    }
}

/// A simulated programmer with a simulated chip on its cable: what `rehearse` and the tests drive.
/// USB programmers are in-process devices; serial programmers are served on a real pseudo-terminal.
public final class SimulatedBench {
    public let clock: VirtualClock
    public let chip: SimulatedAVR
    public let kind: ProgrammerKind

    /// How a driver reaches the programmer.
    public enum Link {
        case usb(SimulatedControlDevice)
        /// A serial device path, served until ``SimulatedBench/stop()``.
        case serial(SerialSimulatorServer)
    }
    public let link: Link

    /// Builds a bench for `kind` and `part`.
    /// - Parameters:
    ///   - flash: initial flash contents from address 0 (the rest erased).
    ///   - fuses: initial fuses; the part's factory values if nil.
    ///   - imagePages: how many pages the restore will write, to place mid-write faults.
    public init(kind: ProgrammerKind, part: AVRPart, flash: [UInt8]? = nil, eeprom: [UInt8]? = nil, fuses: FuseSet? = nil,
                lock: UInt8? = nil, faults: Set<SimulatedFault> = [], imagePages: Int = 32, clock: VirtualClock = VirtualClock()) throws(SimulationError) {
        self.clock = clock
        var initialFuses = fuses ?? part.factoryFuses
        if faults.contains(.slowClock) {
            // What a wrong fuse write leaves: the 128 kHz oscillator where the part has one, the 8 MHz RC
            // divided by 8 on the USB parts, the 1 MHz RC on the ATmega8/16/32.
            switch part.clockFamily {
            case .mega32?: initialFuses.low = 0xE1
            case .mega328?: initialFuses.low = 0xE3
            case .usbMega?, .usbMegaU2?: initialFuses.low = 0x62
            case .tiny13?: initialFuses.low = 0x7B
            case .tiny85?, .tiny84?: initialFuses.low = 0xE4
            case .tiny2313?: initialFuses.low = 0xE6
            case nil: break
            }
        }
        chip = SimulatedAVR(part: part, clock: clock, flash: flash, eeprom: eeprom, fuses: initialFuses,
                            lock: faults.contains(.locked) ? 0x3C : lock)
        self.kind = kind
        if faults.contains(.noTarget) { chip.isAttached = false }
        if faults.contains(.misoLow) { chip.isAttached = false; chip.floatingMISO = 0x00 }
        if faults.contains(.wrongPart) {
            chip.answeredSignature = PartCatalog.avrParts.first { $0.hasNamedFuses && $0.signature != part.signature && $0.flash.size == part.flash.size }?.signature
                ?? Signature(0x1E, 0x95, 0x0F)
        }
        if faults.contains(.targetVanishes) { chip.vanishAfterPageWrites = max(1, imagePages / 2) }
        if faults.contains(.vanishesAfterFuseWrite) { chip.vanishAfterFuseWrite = true }
        if faults.contains(.garbledAfterErase) { chip.signatureAfterErase = Signature(part.signature.bytes[0], part.signature.bytes[1], part.signature.bytes[2] ^ 0x10) }
        if faults.contains(.flippedBit) { chip.flipNextReadOfWrittenFlash = true }
        let midWrite = max(1, imagePages / 2)
        if let stlinkOnly = faults.first(where: { [.swappedWires, .noPower, .oldFirmware, .clone].contains($0) }) {
            throw .faultNotApplicable(stlinkOnly, kind)
        }
        switch kind {
        case .usbasp, .usbtiny:
            if let serialOnly = faults.first(where: { [.neverSyncs, .garbage, .slowAnswer].contains($0) }) {
                throw .faultNotApplicable(serialOnly, kind)
            }
            var usbFaults = USBFaults()
            if faults.contains(.programmerUnplugged) { usbFaults.unplugAfterFlashWrites = midWrite }
            if faults.contains(.programmerHangs) { usbFaults.hangAfterFlashWrites = midWrite }
            let device = simulatedUSBProgrammer(kind, chip: chip, serialNumber: "SIM-USBASP")
            device.faults = usbFaults
            link = .usb(device)
        case .stk500v1, .avrisp, .buspirate:
            let server = try SerialSimulatorServer(simulator: simulatedSerialProgrammer(kind, chip: chip))
            server.line = kind == .avrisp ? .usbCDC : .uart
            if faults.contains(.programmerUnplugged) { server.fault = .cablePulled; server.faultAfterPageWrites = midWrite }
            if faults.contains(.programmerHangs) { server.fault = .slowAnswer; server.faultAfterPageWrites = midWrite }
            if faults.contains(.neverSyncs) { server.fault = .neverSyncs }
            if faults.contains(.garbage) { server.fault = .garbage }
            if faults.contains(.slowAnswer) { server.fault = .slowAnswer }
            server.start()
            link = .serial(server)
        case .stlink:
            throw .unsupportedProgrammer(kind)   // see SimulatedSTM32Bench
        }
    }

    deinit { stop() }

    /// Stops a serial programmer's server; the chip is then safe to read from this thread.
    public func stop() {
        if case let .serial(server) = link { server.stop() }
    }

    /// The device of a USB programmer (nil for serial ones).
    public var usbDevice: USBDevice? {
        if case let .usb(device) = link { return device }
        return nil
    }

    /// Control transfers a USB programmer answered (0 for serial ones).
    public var usbTransfers: Int {
        guard case let .usb(device) = link else { return 0 }
        return device.transferCount
    }

    /// Marks a flash address as holding a stuck bit (the stuck-bit fault needs an address that gets written).
    public func placeStuckBit(at address: UInt32) { chip.stuckBitAddress = address }
}

/// Why a simulated bench cannot be built.
/// The simulator of a USB ISP programmer kind (USBasp; USBtinyISP otherwise), wired to `chip`.
public func simulatedUSBProgrammer(_ kind: ProgrammerKind, chip: SimulatedAVR, serialNumber: String? = nil) -> SimulatedControlDevice {
    kind == .usbasp ? SimulatedUSBasp(chip: chip, serialNumber: serialNumber) : SimulatedUSBtiny(chip: chip)
}

/// The simulator of a serial programmer kind (Bus Pirate; the ArduinoISP sketch otherwise), wired to `chip`.
public func simulatedSerialProgrammer(_ kind: ProgrammerKind, chip: SimulatedAVR) -> SerialProgrammerSimulator {
    kind == .buspirate ? SimulatedBusPirate(chip: chip) : SimulatedArduinoISP(chip: chip)
}

public enum SimulationError: Error, Equatable, Sendable, CustomStringConvertible {
    case unsupportedProgrammer(ProgrammerKind)
    case pseudoTerminal(String)
    case serialLine(String)
    case faultNotApplicable(SimulatedFault, ProgrammerKind)
    /// The bootloader does not run on the simulated part.
    case bootloaderNotOnPart(String)

    public var description: String {
        switch self {
        case let .unsupportedProgrammer(kind): return "no simulator for \(kind.rawValue) programmers"
        case let .pseudoTerminal(reason): return "cannot create a pseudo-terminal: \(reason)"
        case let .serialLine(reason): return "cannot serve the serial line \(reason)"
        case let .faultNotApplicable(fault, kind): return "the \(fault.rawValue) fault does not apply to \(kind.rawValue) rehearsals"
        case let .bootloaderNotOnPart(text): return text
        }
    }
}
