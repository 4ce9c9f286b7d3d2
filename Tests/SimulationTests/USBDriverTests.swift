import AVRISP
import Parts
import Simulation
import TestSupport
import Testing
import Transport

@Suite struct USBaspDriverTests {
    @Test func fallsBackToASlowerSCKForASlowTarget() throws {
        let chip = SimulatedAVR(part: avr("atmega328p"), clock: VirtualClock(), fuses: FuseSet(low: 0xE3, high: 0xD9, extended: 0xFF))
        let usbasp = USBasp(device: SimulatedUSBasp(chip: chip), time: chip.clock)
        try usbasp.enterProgrammingMode()
        // 128 kHz: SCK must stay below 32 kHz.
        #expect(usbasp.identity.sck == "16 kHz")
        #expect(try usbasp.readSignature() == Signature(0x1E, 0x95, 0x0F))
    }

    @Test func usesTheFastestSCKAFastTargetFollows() throws {
        let chip = SimulatedAVR(part: avr("atmega32u4"), clock: VirtualClock(), fuses: FuseSet(low: 0xFF, high: 0xD8, extended: 0xFB))
        let usbasp = USBasp(device: SimulatedUSBasp(chip: chip), time: chip.clock)
        try usbasp.enterProgrammingMode()
        #expect(usbasp.identity.sck == "1.5 MHz")
    }

    @Test func oldFirmwareWithoutSCKSettingSaysSo() throws {
        let chip = SimulatedAVR(part: avr("atmega328p"), clock: VirtualClock(), fuses: FuseSet(low: 0xE3, high: 0xD9, extended: 0xFF))
        let device = SimulatedUSBasp(chip: chip)
        device.hasSCKSetting = false
        let usbasp = USBasp(device: device, time: chip.clock)
        #expect(throws: ISPError.noTarget(slowestSCK: "the firmware's fixed SCK", detail: "tried the firmware's fixed SCK")) {
            try usbasp.enterProgrammingMode()
        }
        #expect(usbasp.identity.firmware?.hasSuffix("(no SCK setting: update the firmware, or use its slow-SCK jumper)") == true)
    }

    @Test func readsAndWritesFlashThroughBlocks() throws {
        let part = avr("at90usb1286")
        let chip = SimulatedAVR(part: part, clock: VirtualClock(), fuses: FuseSet(low: 0xFF, high: 0x99, extended: 0xF3))
        let device = SimulatedUSBasp(chip: chip)
        let usbasp = USBasp(device: device, time: chip.clock)
        try usbasp.enterProgrammingMode()
        let page = FlashPage(address: 0x1E000, bytes: (0..<256).map { UInt8($0 & 0xFF) })
        try usbasp.writeFlash([page, FlashPage(address: 0x1E100, bytes: [UInt8](repeating: 0xA5, count: 256))], part: part) { _ in }
        #expect(Array(chip.flash[0x1E000..<0x1E100]) == page.bytes)
        #expect(chip.instructionsWhileBusy.isEmpty, "the firmware waited out each page")
        #expect(try usbasp.readFlash(from: 0x1E0FE, count: 4, part: part) == [0xFE, 0xFF, 0xA5, 0xA5])
    }

    /// V-USB (no long transfers) keeps wLength's low byte and takes 255 for "no reply": 254 is the
    /// largest read one request carries, and the driver reads in blocks of that.
    @Test func readsInTheLargestBlockTheFirmwareAnswers() throws {
        let part = avr("atmega32u4")
        let chip = SimulatedAVR(part: part, clock: VirtualClock(), flash: (0..<32768).map { UInt8(truncatingIfNeeded: $0 * 7) },
                                fuses: FuseSet(low: 0xFF, high: 0xD8, extended: 0xFB))
        let device = SimulatedUSBasp(chip: chip)
        let usbasp = USBasp(device: device, time: chip.clock)
        try usbasp.enterProgrammingMode()
        #expect(try device.controlIn(request: 4, value: 0, index: 0, length: 254, timeoutMilliseconds: 100).count == 254)
        #expect(throws: USBError.timeout(milliseconds: 100)) {
            try device.controlIn(request: 4, value: 0, index: 0, length: 255, timeoutMilliseconds: 100)
        }
        #expect(try device.controlIn(request: 4, value: 0, index: 0, length: 300, timeoutMilliseconds: 100).count == 44)
        let before = device.transferCount
        let read = try usbasp.readFlash(from: 0, count: 4096, part: part)
        #expect(read == Array(chip.flash[0..<4096]))
        #expect(device.transferCount - before == 1 + 17, "SETLONGADDRESS, then 16 blocks of 254 bytes and one of 32")
    }
}

@Suite struct USBtinyDriverTests {
    @Test func refusesFlashBeyond64KiB() throws {
        let part = avr("at90usb1286")
        let chip = SimulatedAVR(part: part, clock: VirtualClock(), fuses: FuseSet(low: 0xFF, high: 0x99, extended: 0xF3))
        let tiny = USBtinyISP(device: SimulatedUSBtiny(chip: chip), time: chip.clock)
        try tiny.enterProgrammingMode()
        #expect(throws: ISPError.flashBeyondReach(programmer: "USBtinyISP", part: "AT90USB1286", limit: 0x10000, flash: 0x20000)) {
            try tiny.writeFlash([FlashPage(address: 0x1E000, bytes: [UInt8](repeating: 0, count: 256))], part: part) { _ in }
        }
        #expect(chip.pageWrites == 0)
    }

    @Test func theFirmwaresSixteenBitAddressWrapsAround() throws {
        // What the other tools run into: reading back 0x1E000 through a 16-bit address reads 0xE000,
        // so a correctly written bootloader fails verification.
        let part = avr("at90usb1286")
        var flash = [UInt8](repeating: 0xFF, count: part.flash.size)
        flash[0x1E000] = 0x11
        flash[0x1E001] = 0x22
        let chip = SimulatedAVR(part: part, clock: VirtualClock(), flash: flash, fuses: FuseSet(low: 0xFF, high: 0x99, extended: 0xF3))
        let device = SimulatedUSBtiny(chip: chip)
        _ = try device.controlIn(request: 5, value: 10, index: 0, length: 0, timeoutMilliseconds: 500)
        #expect(try device.controlIn(request: 7, value: 0x53AC, index: 0, length: 4, timeoutMilliseconds: 500)[2] == 0x53)
        let readBack = try device.controlIn(request: 9, value: 0, index: UInt16(0x1E000 & 0xFFFF), length: 2, timeoutMilliseconds: 500)
        #expect(readBack == [0xFF, 0xFF])
    }

    @Test func fallsBackToASlowerSCK() throws {
        let chip = SimulatedAVR(part: avr("atmega32u4"), clock: VirtualClock())
        let tiny = USBtinyISP(device: SimulatedUSBtiny(chip: chip), time: chip.clock)
        try tiny.enterProgrammingMode()
        #expect(tiny.identity.sck == "333 kHz", "a 2 MHz chip takes SCK below 500 kHz")
    }
}
