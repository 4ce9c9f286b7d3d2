import Agent
import AVRISP
import FirmwareImage
import Parts
import Rules
import STLink
import Transport

/// The parsers that take bytes from outside — files a person writes, answers a programmer sends, what
/// udev and the journal hold — each as a function of arbitrary input that must end in a value or a typed,
/// printable error, never a crash, a hang or a message with raw control characters.
///
/// `bootmedic-fuzz` runs them under libFuzzer (`make fuzz`); the test suite replays every input a fuzzer
/// ever found a fault with (`Tests/FuzzRegressions/<target>/`) and the seeds.
public enum FuzzTarget: String, CaseIterable, Sendable {
    case intelHex = "intel-hex"
    case toml
    case rules
    case stk500v1
    case busPirate = "buspirate"
    case stlink
    case udev
    case journal

    /// Runs one input; throws ``FuzzFinding`` where the outcome breaks a promise the code makes (a crash
    /// ends the process by itself).
    public func run(_ input: [UInt8]) throws(FuzzFinding) {
        switch self {
        case .intelHex: try Self.intelHex(input)
        case .toml: try Self.toml(input)
        case .rules: try Self.rules(input)
        case .stk500v1:
            let clock = VirtualClock()
            try Self.isp(STK500v1(link: FuzzSerialLink(input, clock: clock), flavor: .arduinoISP, time: clock), clock: clock)
        case .busPirate:
            let clock = VirtualClock()
            try Self.isp(BusPirate(link: FuzzSerialLink(input, clock: clock), time: clock), clock: clock)
        case .stlink: try Self.stlink(input)
        case .udev: try Self.udev(input)
        case .journal: try Self.journal(input)
        }
    }

    // MARK: Files

    /// A HEX file that parses formats back to the same image; one that does not names a place inside it.
    private static func intelHex(_ input: [UInt8]) throws(FuzzFinding) {
        let image: MemoryImage
        do { image = try IntelHex.parse(input) } catch {
            try printable(error.description, "Intel HEX error")
            guard error.line >= 1, error.column >= 1 else { throw FuzzFinding("error at \(error.line):\(error.column)") }
            return
        }
        let again: MemoryImage
        do { again = try IntelHex.parse(IntelHex.format(image)) } catch { throw FuzzFinding("a parsed image does not read back: \(error)") }
        guard again == image else { throw FuzzFinding("a parsed image reads back different") }
    }

    private static func toml(_ input: [UInt8]) throws(FuzzFinding) {
        do { _ = try TOMLParser.parse(utf8: input) } catch {
            try printable(error.description, "TOML error")
            guard error.position.line >= 1, error.position.column >= 1 else { throw FuzzFinding("error at \(error.position)") }
        }
    }

    /// Rules decoding: whatever the file holds, every problem is one printable line.
    private static func rules(_ input: [UInt8]) throws(FuzzFinding) {
        let loaded = RulesFile.parse(utf8: input, path: "fuzz.toml", firmwareDirectory: "/nonexistent")
        for problem in loaded.problems { try printable(problem.description, "rule problem") }
        if loaded.ruleSet == nil, loaded.errors.isEmpty { throw FuzzFinding("no rules and no error") }
    }

    // MARK: Programmers' answers

    /// A programmer session as a restore starts it, on a line that answers with the input: every step ends
    /// in a value or a typed error with a printable message, within a bounded (simulated) time.
    private static func isp(_ programmer: some ISPProgrammer, clock: VirtualClock) throws(FuzzFinding) {
        let part = PartCatalog.avrParts.first { $0.id == "atmega328p" }!
        func step<T>(_ body: () throws(ISPError) -> T) throws(FuzzFinding) -> T? { try attempt(body) }
        defer { programmer.leaveProgrammingMode() }
        guard try step({ () throws(ISPError) in try programmer.enterProgrammingMode() }) != nil else { return try bounded(clock) }
        for index: UInt8 in 0..<3 {
            guard let answer = try step({ () throws(ISPError) in try programmer.transfer(.readSignature(index)) }) else { return try bounded(clock) }
            guard answer.count == 4 else { throw FuzzFinding("an ISP transfer gave \(answer.count) bytes") }
        }
        if let flash = try step({ () throws(ISPError) in try programmer.readFlash(from: 0x7F00, count: 256, part: part) }), flash.count != 256 {
            throw FuzzFinding("readFlash gave \(flash.count) of 256 bytes")
        }
        if let eeprom = try step({ () throws(ISPError) in try programmer.readEEPROM(from: 0, count: 8, part: part) }), eeprom.count != 8 {
            throw FuzzFinding("readEEPROM gave \(eeprom.count) of 8 bytes")
        }
        let page = FlashPage(address: 0x7E00, bytes: (0..<128).map { UInt8($0) })
        _ = try step({ () throws(ISPError) in try programmer.writeFlash([page], part: part, progress: { _ in }) })
        try bounded(clock)
    }

    /// An ST-Link session as the STM32 restore starts it.
    private static func stlink(_ input: [UInt8]) throws(FuzzFinding) {
        let clock = VirtualClock()
        let link = STLink(device: FuzzUSBDevice(input, productID: 0x3748, clock: clock), time: clock)
        func step<T>(_ body: () throws(STLinkError) -> T) throws(FuzzFinding) -> T? { try attempt(body) }
        defer { link.disconnect() }
        guard try step({ () throws(STLinkError) in try link.connect() }) != nil else { return try bounded(clock) }
        _ = try step({ () throws(STLinkError) in try link.halt() })
        _ = try step({ () throws(STLinkError) in try link.readWord(0xE004_2000) })
        if let bytes = try step({ () throws(STLinkError) in try link.read32(0x0800_0000, count: 64) }), bytes.count != 64 {
            throw FuzzFinding("read32 gave \(bytes.count) of 64 bytes")
        }
        _ = try step({ () throws(STLinkError) in try link.writeWord(0x4002_2004, 0x4567_0123) })
        try bounded(clock)
    }

    /// One step of a session: its value, or nil after a typed error whose message must be printable.
    private static func attempt<T, E: Error & CustomStringConvertible>(_ body: () throws(E) -> T) throws(FuzzFinding) -> T? {
        do { return try body() } catch {
            try printable(error.description, "\(E.self)")
            return nil
        }
    }

    /// However a device answers, a session gives up within minutes of its own (simulated) time.
    private static func bounded(_ clock: VirtualClock) throws(FuzzFinding) {
        guard clock.seconds < 600 else { throw FuzzFinding("the session waited \(Int(clock.seconds)) s") }
    }

    // MARK: What the system says

    /// A device's udev properties, as the kernel's uevent carries them (`KEY=value`, NUL-separated).
    private static func udev(_ input: [UInt8]) throws(FuzzFinding) {
        var properties: [String: String] = [:]
        for entry in input.split(separator: 0) {
            let text = String(decoding: entry, as: UTF8.self)
            guard let equals = text.firstIndex(of: "=") else { continue }
            properties[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        guard let device = UdevDevice(syspath: "/sys/devices/fuzz", subsystem: properties["SUBSYSTEM"] ?? "usb", devnode: properties["DEVNAME"],
                                      property: { properties[$0] }, attribute: { _ in nil }) else { return }
        guard USBID(vendor: device.vendorID, product: device.productID).description.count == 9 else { throw FuzzFinding("USB id") }
    }

    /// A journal entry's fields as sd-journal returns them (`NAME=value`, any bytes), newline-separated here.
    private static func journal(_ input: [UInt8]) throws(FuzzFinding) {
        let fields = input.split(separator: 0x0A, omittingEmptySubsequences: true).map(Array.init)
        let record = JobRecord { name in fields.first { $0.starts(with: Array((name + "=").utf8)) } }
        if fields.contains(where: { $0.starts(with: Array("BOOTMEDIC_JOB=".utf8)) }), record.job == "?" {
            throw FuzzFinding("BOOTMEDIC_JOB present but not read")
        }
    }

    /// Control characters in a message are a finding: input must reach people escaped.
    private static func printable(_ text: String, _ what: String) throws(FuzzFinding) {
        if let bad = text.unicodeScalars.first(where: { $0.properties.generalCategory == .control }) {
            throw FuzzFinding("\(what) holds control character U+\(String(bad.value, radix: 16)): \(text.escapedForDisplay)")
        }
    }
}

/// A promise broken by an input.
public struct FuzzFinding: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
