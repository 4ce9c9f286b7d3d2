import Transport
import DeviceCatalog
import Foundation
import Parts
import Programmers
import Rules
import Simulation
import TestSupport
import Testing

@Suite struct DeviceCatalogTests {
    /// The README's example: a USBasp clone with its own product string.
    static let declaredClone = """
    [[programmer]]
    usb = "16C0:05DC"
    product = "USBasp-clone"
    kind = "usbasp"

    """

    @Test func theShippedUdevRulesAreTheCatalogsOwn() throws {
        let shipped = try String(contentsOf: Fixtures.repositoryRoot.appendingPathComponent("udev-rules/60-bootmedic.rules"), encoding: .utf8)
        #expect(shipped == UdevRules.render(.builtIn), "regenerate it: bootmedic devices udev-rules -o udev-rules/60-bootmedic.rules")
    }

    @Test func firstMatchWinsAndProductStringsTellSharedIdsApart() {
        let catalog = DeviceCatalog.builtIn
        let vusb = USBID(vendor: 0x16C0, product: 0x05DC)
        #expect(catalog.entry(for: vusb, product: "USBasp")?.role == .programmer(.usbasp))
        #expect(catalog.entry(for: vusb, product: "USBaspLoader")?.role == .bootloader(.usbasploader))
        #expect(catalog.entry(for: vusb, product: nil)?.role == .bootloader(.usbasploader))
        #expect(catalog.mayBeUSBProgrammer(vusb), "opened to read its product string")
        #expect(!catalog.mayBeUSBProgrammer(USBID(vendor: 0x03EB, product: 0x2FF4)), "a bootloader alone is never opened")
        #expect(catalog.entry(for: USBID(vendor: 0x0483, product: 0x3748), product: "STM32 STLink")?.role == .programmer(.stlink))
        #expect(catalog.entry(for: USBID(vendor: 0x1B4F, product: 0x9205), product: nil)?.role == .bootloader(.caterina))
        #expect(catalog.entry(for: USBID(vendor: 0x0BDA, product: 0x8153), product: nil) == nil)
    }

    @Test func everyProgrammerKindHasADriverAndEveryCatalogKindIsReachedTheWayItsDriverSays() {
        for kind in ProgrammerKind.allCases {
            #expect(ProgrammerRegistry.driver(for: kind).isSerial == kind.isSerial, "\(kind)")
        }
        for entry in DeviceCatalog.builtIn.entries {
            switch entry.role {
            case let .programmer(kind): #expect(!ProgrammerRegistry.driver(for: kind).isSerial, "\(entry.name)")
            case let .serialCandidate(kinds): #expect(kinds.allSatisfy { ProgrammerRegistry.driver(for: $0).isSerial }, "\(entry.name)")
            case .bootloader, .ignore: break
            }
        }
    }

    /// The README's example: a USBasp clone with its own product string, declared in the rules file, is
    /// opened by the USBasp driver the catalog names, and programs the chip on its cable.
    @Test func aDeclaredUSBaspCloneIsOpenedThroughTheCatalog() throws {
        let loaded = RulesFile.parse(Self.declaredClone, path: "c.toml")
        let catalog = try #require(loaded.ruleSet).deviceCatalog
        let part = try #require(PartCatalog.part(named: "atmega32u4"))
        guard case let .avr(avr) = part else { Issue.record("not an AVR"); return }
        let device = SimulatedUSBasp(chip: SimulatedAVR(part: avr, clock: VirtualClock()), product: "USBasp-clone")
        let d = device.description
        let entry = try #require(catalog.entry(for: USBID(vendor: d.vendorID, product: d.productID), product: d.product))
        #expect(entry.declared)
        guard case let .programmer(kind) = entry.role else { Issue.record("\(entry.role)"); return }
        let connection = try ProgrammerRegistry.driver(for: kind).open(usb: device, time: device.chip.clock)
        guard case let .isp(isp) = connection else { Issue.record("not an ISP programmer"); return }
        try isp.enterProgrammingMode()
        #expect(try isp.readSignature() == avr.signature)
        isp.leaveProgrammingMode()
        #expect(isp.identity.name == "USBasp (USBasp-clone)")
        // Without the declaration the same device is a V-USB device to leave alone.
        #expect(DeviceCatalog.builtIn.entry(for: USBID(vendor: d.vendorID, product: d.productID), product: d.product)?.role == .bootloader(.usbasploader))
    }

    @Test func declaredEntriesComeFirstInTheUdevRules() throws {
        let loaded = RulesFile.parse(Self.declaredClone + """
        [[programmer]]
        usb = "1A86:7523"
        kind = "ignore"
        [[programmer]]
        usb = "1209:5BF0"
        product = "bad\\"quote"
        kind = "usbasp"
        """, path: "c.toml")
        #expect(loaded.errors.map(\.description) == ["c.toml:10:11: error: product 'bad\"quote' must be the USB product string as printable ASCII without quotes, backslashes or * ? [ ] |"])
        let rules = UdevRules.render(try #require(loaded.ruleSet).deviceCatalog).split(separator: "\n").map(String.init)
        let clone = try #require(rules.firstIndex(of: #"ATTR{idVendor}=="16c0", ATTR{idProduct}=="05dc", ATTR{product}=="USBasp-clone", ENV{BOOTMEDIC_PROGRAMMER}="usbasp", GOTO="bootmedic_access""#))
        let genuine = try #require(rules.firstIndex(of: #"ATTR{idVendor}=="16c0", ATTR{idProduct}=="05dc", ATTR{product}=="USBasp", ENV{BOOTMEDIC_PROGRAMMER}="usbasp", GOTO="bootmedic_access""#))
        #expect(clone < genuine)
        #expect(rules[clone - 1] == "# 16C0:05DC \"USBasp-clone\" (declared in the rules file)")
        // The ignored CH340 shadows the built-in probe of that adapter: no ModemManager flag, no probe.
        let ignored = try #require(rules.firstIndex(of: #"SUBSYSTEMS=="usb", ATTRS{idVendor}=="1a86", ATTRS{idProduct}=="7523", GOTO="bootmedic_end""#))
        let probed = try #require(rules.firstIndex(of: #"SUBSYSTEMS=="usb", ATTRS{idVendor}=="1a86", ATTRS{idProduct}=="7523", ENV{ID_MM_DEVICE_IGNORE}="1", GOTO="bootmedic_end""#))
        #expect(ignored < probed)
    }
}
