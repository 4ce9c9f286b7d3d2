import Transport
import AVRISP
import Dispatch
import Foundation
import Parts
import Simulation
import TestSupport
import Testing

/// A chip in programming mode at a SCK it follows.
func programmingChip(_ part: String = "atmega32u4", fuses: FuseSet? = nil, lock: UInt8? = nil) -> SimulatedAVR {
    let chip = SimulatedAVR(part: avr(part), clock: VirtualClock(), fuses: fuses, lock: lock)
    chip.setReset(held: true)
    #expect(chip.exchange(ISPInstruction.programmingEnable.bytes, sckHertz: 100_000)[2] == 0x53)
    return chip
}

extension SimulatedAVR {
    func send(_ instruction: ISPInstruction) -> UInt8 { exchange(instruction.bytes, sckHertz: 100_000)[3] }
    func waitIdle() { clock.advance(nanoseconds: 20_000_000) }
}

@Suite struct SimulatedAVRTests {
    @Test func answersItsSignatureAndFactoryFuses() {
        let chip = programmingChip()
        #expect([chip.send(.readSignature(0)), chip.send(.readSignature(1)), chip.send(.readSignature(2))] == [0x1E, 0x95, 0x87])
        #expect(chip.send(.readFuse(.low)) == 0x5E)
        #expect(chip.send(.readFuse(.high)) == 0x99)
        // Only the low four bits of the extended fuse exist; the rest read as this silicon has them.
        #expect(chip.send(.readFuse(.extended)) == 0xC3)
        #expect(chip.send(.readLock) == 0xFF)
    }

    @Test func programmingOnlyClearsBitsAndNeedsTheWritePageInstruction() {
        let chip = programmingChip()
        chip.send(.loadFlashPage(byteAddress: 0x7000, value: 0xF0)).ignore()
        chip.send(.loadFlashPage(byteAddress: 0x7001, value: 0x0F)).ignore()
        #expect(chip.flash[0x7000] == 0xFF, "the page buffer is not flash until written")
        chip.send(.writeFlashPage(byteAddress: 0x7000)).ignore()
        chip.waitIdle()
        #expect(Array(chip.flash[0x7000...0x7002]) == [0xF0, 0x0F, 0xFF])
        chip.send(.loadFlashPage(byteAddress: 0x7000, value: 0x3C)).ignore()
        chip.send(.writeFlashPage(byteAddress: 0x7000)).ignore()
        chip.waitIdle()
        #expect(chip.flash[0x7000] == 0x30, "programming ANDs: 0xF0 & 0x3C")
        chip.send(.chipErase).ignore()
        chip.waitIdle()
        #expect(chip.flash.allSatisfy { $0 == 0xFF })
    }

    @Test func instructionsWhileBusyAreIgnoredAndRecorded() {
        let chip = programmingChip()
        chip.send(.loadFlashPage(byteAddress: 0, value: 0x00)).ignore()
        chip.send(.writeFlashPage(byteAddress: 0)).ignore()
        #expect(chip.isBusy)
        #expect(chip.send(.pollBusy) & 1 == 1)
        #expect(chip.send(.readFlash(byteAddress: 0)) == 0xFF, "data polling reads 0xFF during the write")
        chip.send(.loadFlashPage(byteAddress: 0x80, value: 0x00)).ignore()
        #expect(chip.instructionsWhileBusy == ["40 00 40 00"])
        chip.clock.advance(nanoseconds: 4_500_000)
        #expect(chip.send(.pollBusy) & 1 == 0)
        #expect(chip.send(.readFlash(byteAddress: 0)) == 0x00)
    }

    @Test func aTooFastSCKGetsNoEcho() {
        // Factory ATmega32U4: 16 MHz crystal divided by 8 = 2 MHz, so SCK must stay below 500 kHz.
        let chip = SimulatedAVR(part: avr("atmega32u4"), clock: VirtualClock())
        chip.setReset(held: true)
        #expect(chip.maximumSCK == 500_000)
        #expect(chip.exchange(ISPInstruction.programmingEnable.bytes, sckHertz: 750_000)[2] != 0x53)
        #expect(chip.exchange(ISPInstruction.programmingEnable.bytes, sckHertz: 375_000)[2] == 0x53)
    }

    @Test func fuseChangesApplyAtTheNextReset() {
        let chip = programmingChip()
        chip.send(.writeFuse(.low, 0xFF)).ignore()
        chip.waitIdle()
        #expect(chip.cpuHertz == 2_000_000)
        chip.setReset(held: false)
        chip.setReset(held: true)
        #expect(chip.cpuHertz == 16_000_000)
    }

    @Test func serialProgrammingCannotClearSPIEN() {
        let chip = programmingChip("atmega328p")
        chip.send(.writeFuse(.high, 0xFF)).ignore()
        chip.waitIdle()
        #expect(chip.fuses.high == 0xDF, "SPIEN (0x20) stays programmed")
    }

    @Test func lockBitsHideMemoryUntilAChipErase() {
        let chip = SimulatedAVR(part: avr("atmega32u4"), clock: VirtualClock(), flash: [0x12, 0x34], eeprom: [0x56], lock: 0x3C)
        chip.setReset(held: true)
        _ = chip.exchange(ISPInstruction.programmingEnable.bytes, sckHertz: 100_000)
        #expect(chip.send(.readFlash(byteAddress: 0)) == 0x00)
        #expect(chip.send(.readEEPROM(0)) == 0x00)
        chip.send(.writeFuse(.low, 0xFF)).ignore()
        chip.waitIdle()
        #expect(chip.fuses.low == 0x5E, "fuses are locked too")
        chip.send(.chipErase).ignore()
        chip.waitIdle()
        #expect(chip.send(.readLock) == 0xFF)
        #expect(chip.send(.readFlash(byteAddress: 0)) == 0xFF)
    }

    @Test func eesaveKeepsTheEEPROMThroughAnErase() {
        let kept = SimulatedAVR(part: avr("atmega328p"), clock: VirtualClock(), eeprom: [1, 2, 3], fuses: FuseSet(low: 0x62, high: 0xD1, extended: 0xFF))
        kept.setReset(held: true)
        _ = kept.exchange(ISPInstruction.programmingEnable.bytes, sckHertz: 100_000)
        kept.send(.chipErase).ignore()
        #expect(Array(kept.eeprom.prefix(3)) == [1, 2, 3])
        let erased = programmingChip("atmega328p")
        erased.send(.writeEEPROM(0, 0x42)).ignore()
        erased.waitIdle()
        #expect(erased.eeprom[0] == 0x42)
        erased.send(.chipErase).ignore()
        #expect(erased.eeprom[0] == 0xFF)
    }

    @Test func noTargetReadsAsTheFloatingLine() {
        let chip = SimulatedAVR(part: avr("atmega32u4"), clock: VirtualClock())
        chip.isAttached = false
        chip.setReset(held: true)
        #expect(chip.exchange(ISPInstruction.programmingEnable.bytes, sckHertz: 100_000) == [0xFF, 0xFF, 0xFF, 0xFF])
        chip.floatingMISO = 0x00
        #expect(chip.exchange(ISPInstruction.readSignature(0).bytes, sckHertz: 100_000) == [0, 0, 0, 0])
    }

    @Test func spiTakesThirtyTwoBitTimes() {
        let chip = programmingChip()
        let before = chip.clock.now
        _ = chip.exchange(ISPInstruction.readSignature(0).bytes, sckHertz: 375_000)
        #expect(chip.clock.now - before == 85_333)
    }
}

extension UInt8 {
    /// Discards an instruction's answer where a test only cares about its effect.
    func ignore() {}
}

@Suite struct RealTimePacerTests {
    @Test func theHostsTimePassesOnTheDeviceAndTheDevicesTimeIsWaitedFor() {
        let clock = VirtualClock()
        let pace = RealTimePacer(clock: clock)
        usleep(20_000)
        pace.catchUp()
        #expect(clock.now >= 20_000_000, "20 ms of the host's think time passed on the device")

        clock.advance(nanoseconds: 50_000_000)   // an answer that takes the device 50 ms
        let before = DispatchTime.now().uptimeNanoseconds
        pace.holdBack()
        let waited = DispatchTime.now().uptimeNanoseconds - before
        #expect(waited >= 45_000_000, "held back \(waited / 1_000_000) ms for the device's 50 ms")

        let settled = clock.now
        pace.catchUp()
        #expect(clock.now >= settled && clock.now < settled + 20_000_000, "in step again, not double-counted")
    }
}
