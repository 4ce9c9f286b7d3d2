import Transport

/// A simulated ST-Link/V2 with a simulated STM32 on its SWD cable: a Bluepill (STM32F103C8) unless a
/// model says otherwise.
public final class SimulatedSTM32Bench {
    public let clock: VirtualClock
    public let target: SimulatedSTM32
    public let stlink: SimulatedSTLink

    /// - Parameters:
    ///   - protected: the chip starts read-protected (RDP not 0xA5).
    ///   - imageBlocks: how many 1 KiB programming blocks the restore writes, to place the mid-write unplug.
    public init(model: SimulatedSTM32Model = .stm32f103, flash: [UInt8]? = nil, protected: Bool = false, faults: Set<SimulatedFault> = [],
                imageBlocks: Int = 8, clock: VirtualClock = VirtualClock()) throws(SimulationError) {
        self.clock = clock
        target = SimulatedSTM32(model: model, clock: clock, flash: flash, readProtected: protected)
        stlink = SimulatedSTLink(target: target)
        for fault in faults {
            switch fault {
            case .noTarget, .swappedWires: stlink.swdConnected = false
            case .noPower: stlink.targetVolts = 0.04
            case .oldFirmware: stlink.firmware = (2, 22, 7)
            case .clone: target.debugPortIDCode = 0x2BA0_1477
            case .programmerUnplugged: stlink.unplugAfterWrites = max(1, imageBlocks / 2)
            default: throw .faultNotApplicable(fault, .stlink)
            }
        }
    }

    public var device: USBDevice { stlink }
}
