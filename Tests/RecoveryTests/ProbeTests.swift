import AVRISP
import Parts
import Recovery
import Simulation
import TestSupport
import Testing

@Suite struct ProbeTests {
    @Test func probesAChipWithoutChangingIt() throws {
        let bench = try SimulatedBench(kind: .usbasp, part: avr("atmega32u4"), flash: garbage(32768))
        let report = TargetProbe.run(USBasp(device: bench.usbDevice!, time: bench.clock))
        #expect(report.problem == nil)
        #expect(report.part?.id == "atmega32u4")
        #expect(report.signature == Signature(0x1E, 0x95, 0x87))
        #expect(report.fuses == FuseSet(low: 0x5E, high: 0x99, extended: 0xC3))
        #expect(report.lock == 0xFF)
        #expect(report.programmer.sck == "375 kHz")
        #expect(bench.chip.flash == garbage(32768))
        #expect(!bench.chip.isResetHeld, "the target runs again afterwards")
    }

    @Test func probesNothingClearly() throws {
        let bench = try SimulatedBench(kind: .usbtiny, part: avr("atmega32u4"), faults: [.noTarget])
        let report = TargetProbe.run(USBtinyISP(device: bench.usbDevice!, time: bench.clock))
        #expect(report.part == nil)
        #expect(report.problem?.exitCode == 3)
    }
}
