import Agent
import Bootloaders
import Dispatch
import FirmwareImage
import FoundationEssentials
import Glibc
import Parts
import Programmers
import Rules
import Simulation
import Synchronization
import Transport

/// A scripted bench: simulated programmers plugged and unplugged, boards attached and removed, over time.
///
/// ```toml
/// poll_interval = 0.05
/// real_time = true          # optional: USB programmers take the hardware's time on the wall clock too
/// [[step]]
/// at = 0.0
/// plug = "bench-1"          # a programmer arrives
/// programmer = "usbasp"
/// [[step]]
/// at = 0.2
/// attach = "bench-1"        # a board on its cable
/// part = "atmega32u4"
/// healthy = "pro-micro-5v"  # optional: the board already has this rule's bootloader and fuses
/// fault = "target-vanishes" # optional
/// [[step]]
/// at = 2.0
/// detach = "bench-1"
/// [[step]]
/// at = 2.5
/// unplug = "bench-1"
/// ```
public struct VirtualBenchScenario: Sendable {
    public enum Action: Sendable, Equatable {
        case plug(name: String, kind: ProgrammerKind)
        case attach(name: String, part: String, healthyRule: String?, faults: [SimulatedFault], protected: Bool, enumerates: Bool = false)
        case detach(name: String)
        case unplug(name: String)
    }

    public struct Step: Sendable, Equatable {
        public let at: Double
        public let action: Action

        public init(at: Double, action: Action) {
            self.at = at
            self.action = action
        }
    }

    public var pollInterval: Double
    public var steps: [Step]
    /// Whether the simulated USB programmers and chips are held to the wall clock (a transfer returns once
    /// the time the hardware would take has really passed), so that concurrent restores overlap as they
    /// would on a real bench. Off, every simulated wait passes at once.
    public var realTime: Bool

    public init(pollInterval: Double, steps: [Step], realTime: Bool = false) {
        self.pollInterval = pollInterval
        self.steps = steps
        self.realTime = realTime
    }

    /// Reads a scenario file, naming the line of anything it does not understand.
    public static func load(path: String) throws(VirtualBenchError) -> VirtualBenchScenario {
        let bytes: [UInt8]
        do { bytes = try InputFile.contents(of: path, maximumSize: RulesFile.maximumFileSize) } catch { throw .file("\(path): \(error)") }
        let root: TOMLTable
        do { root = try TOMLParser.parse(utf8: bytes) } catch { throw .file("\(path):\(error)") }
        var scenario = VirtualBenchScenario(pollInterval: 0.1, steps: [])
        if case let .float(v)? = root["poll_interval"]?.value { scenario.pollInterval = v }
        if case let .integer(v)? = root["poll_interval"]?.value { scenario.pollInterval = Double(v) }
        if case let .boolean(v)? = root["real_time"]?.value { scenario.realTime = v }
        guard case let .array(items)? = root["step"]?.value else { throw .file("\(path): no [[step]]") }
        for item in items {
            guard case let .table(t) = item.value else { continue }
            func string(_ key: String) -> String? { if case let .string(s)? = t[key]?.value { return s }; return nil }
            let line = "\(path):\(t.position.line)"
            var at = 0.0
            if case let .float(v)? = t["at"]?.value { at = v } else if case let .integer(v)? = t["at"]?.value { at = Double(v) }
            let action: Action
            if let name = string("plug") {
                guard let kind = string("programmer").flatMap(ProgrammerKind.init(rawValue:)) else { throw .file("\(line): plug needs programmer = \"usbasp\" (or usbtiny, stlink)") }
                action = .plug(name: name, kind: kind)
            } else if let name = string("attach") {
                guard let part = string("part") else { throw .file("\(line): attach needs part = \"…\"") }
                var faults: [SimulatedFault] = []
                if let f = string("fault") {
                    guard let fault = SimulatedFault(rawValue: f) else { throw .file("\(line): unknown fault '\(f)'") }
                    faults.append(fault)
                }
                var protected = false, enumerates = false
                if case let .boolean(b)? = t["protected"]?.value { protected = b }
                if case let .boolean(b)? = t["usb"]?.value { enumerates = b }
                action = .attach(name: name, part: part, healthyRule: string("healthy"), faults: faults, protected: protected, enumerates: enumerates)
            } else if let name = string("detach") {
                action = .detach(name: name)
            } else if let name = string("unplug") {
                action = .unplug(name: name)
            } else {
                throw .file("\(line): a step needs plug, attach, detach or unplug")
            }
            scenario.steps.append(Step(at: at, action: action))
        }
        scenario.steps.sort { $0.at < $1.at }
        return scenario
    }
}

public enum VirtualBenchError: Error, Sendable, CustomStringConvertible {
    case file(String)
    case unknownProgrammer(String)

    public var description: String {
        switch self {
        case let .file(text): return text
        case let .unknownProgrammer(name): return "the scenario uses programmer '\(name)' before plugging it"
        }
    }
}

/// A simulated USB programmer whose board can be swapped while a slot uses it: every access holds the
/// lock, and a swap replaces the simulated chip (and programmer) between two accesses.
final class SwappableDevice: USBDevice, Sendable {
    private struct State: Sendable {
        var gone = false
        /// Who hears how long the agent took to send its first command.
        var onFirstCommand: (@Sendable (Double) -> Void)?
    }
    private let state: Mutex<State>
    /// The simulator behind the programmer now: a simulated device is not thread-safe, so it is touched
    /// only while `state` is locked.
    nonisolated(unsafe) private var current: USBDevice
    let description: USBDeviceDescription
    /// When the programmer appeared.
    private let plugged = Date()
    /// Holds each access back until the wall clock has caught up with the simulated hardware (real time).
    private let pacer: RealTimePacer?

    init(_ device: USBDevice, pacer: RealTimePacer? = nil, onFirstCommand: (@Sendable (Double) -> Void)? = nil) {
        description = device.description
        current = device
        state = Mutex(State(onFirstCommand: onFirstCommand))
        self.pacer = pacer
    }

    func swap(to device: USBDevice) { state.withCheckedLock { _ in current = device } }
    func unplug() { state.withCheckedLock { $0.gone = true } }

    private func with<T: Sendable>(_ body: (USBDevice) throws(USBError) -> T) throws(USBError) -> T {
        try state.withCheckedLock { (state: inout State) throws(USBError) -> T in
            if state.gone { throw .noDevice }
            if let report = state.onFirstCommand {
                state.onFirstCommand = nil
                report(Date().timeIntervalSince(plugged))
            }
            pacer?.catchUp()
            defer { pacer?.holdBack() }
            return try body(current)
        }
    }

    func controlIn(request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        try with { (d: USBDevice) throws(USBError) in try d.controlIn(request: request, value: value, index: index, length: length, timeoutMilliseconds: timeoutMilliseconds) }
    }

    func controlOut(request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        try with { (d: USBDevice) throws(USBError) in try d.controlOut(request: request, value: value, index: index, data: data, timeoutMilliseconds: timeoutMilliseconds) }
    }

    func bulkWrite(endpoint: UInt8, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        try with { (d: USBDevice) throws(USBError) in try d.bulkWrite(endpoint: endpoint, data: data, timeoutMilliseconds: timeoutMilliseconds) }
    }

    func bulkRead(endpoint: UInt8, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        try with { (d: USBDevice) throws(USBError) in try d.bulkRead(endpoint: endpoint, length: length, timeoutMilliseconds: timeoutMilliseconds) }
    }

    func close() {}
}

/// A value behind a lock that closures can share.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withCheckedLock<T: Sendable>(_ body: (inout Value) -> T) -> T { mutex.withCheckedLock { body(&$0) } }
}

/// Plays a scenario against an agent: the agent sees the simulated programmers exactly as it sees real ones.
public final class VirtualBench {
    private let rules: RuleSet
    private var devices: [String: (kind: ProgrammerKind, device: SwappableDevice, clock: VirtualClock)] = [:]
    /// Serial programmers: a pseudo-terminal per board (the simulator wraps one chip), looked up at each open.
    private var serial: [String: SerialBox] = [:]

    /// The serial simulator currently behind one virtual programmer.
    final class SerialBox: Sendable {
        private struct State: Sendable {
            /// Opens in progress. A pseudo-terminal closed under an opener frees its number for the next one
            /// allocated anywhere in the process, and the opener would take a stranger's port: so the old
            /// simulator is stopped only once no open is under way (an opened port keeps its number).
            var opening = 0
        }
        private let state = Mutex(State())
        /// The simulator behind the programmer now; touched only while `state` is locked.
        nonisolated(unsafe) private var bench: SimulatedBench?

        /// The programmer kind and chip of the simulator behind it now.
        var current: (kind: ProgrammerKind, chip: SimulatedAVR)? {
            state.withCheckedLock { _ in bench.map { ($0.kind, $0.chip) } }
        }

        /// Runs `open` on the current pseudo-terminal's path; nil path when no simulator is plugged.
        func open<T>(_ open: (String?) throws -> T) rethrows -> T {
            let path = state.withCheckedLock { state -> String? in
                state.opening += 1
                return bench.flatMap { if case let .serial(server) = $0.link { return server.path }; return nil }
            }
            defer { state.withCheckedLock { $0.opening -= 1 } }
            return try open(path)
        }

        /// Puts `new` behind the programmer once no open is under way (an open takes microseconds; after
        /// five seconds it swaps regardless), and stops the one it replaces.
        func replace(with new: SimulatedBench?) {
            var old: SimulatedBench?
            for attempt in 0...5_000 {
                let swapped = state.withCheckedLock { state -> Bool in
                    guard state.opening == 0 || attempt == 5_000 else { return false }
                    old = bench
                    bench = new
                    return true
                }
                if swapped { break }
                usleep(1_000)
            }
            old?.stop()
        }
    }
    /// The simulated chips last attached, for tests and dumps.
    public private(set) var chips: [String: SimulatedAVR] = [:]
    public private(set) var stm32: [String: SimulatedSTM32] = [:]

    /// Seconds from each USB programmer's plug event to the agent's first command to it.
    private let latencyBox = Locked<[Double]>([])
    public var eventToFirstCommand: [Double] { latencyBox.withCheckedLock { $0 } }

    /// Each board attached (the monotonic clock then, ns) with its chip: how long until its first write.
    private var arrivals: [(attached: UInt64, chip: SimulatedAVR)] = []
    /// Seconds from each AVR board's arrival on its programmer's cable to the first erase or write the
    /// restore sent it (boards that were never written, healthy ones, are left out).
    public var attachToFirstWrite: [Double] {
        arrivals.compactMap { arrival in
            let first = arrival.chip.firstWrite.uptimeNanoseconds
            return first > arrival.attached ? Double(first - arrival.attached) / 1e9 : nil
        }
    }

    /// Boards whose USB is connected too: once restored, their bootloader enumerates.
    private let usbConnected = Locked<[String: Bool]>([:])
    /// Each attached board's part and page-write count, for what its USB would show.
    private let boards = Locked<[String: (part: String, writes: SharedCounter)]>([:])
    /// The Atmel DFU bootloader each attached board runs once restored, when its rule expects one.
    private let dfuBoards = Locked<[String: BenchBootloader]>([:])

    /// Whether programmers plugged from now on are held to the wall clock (the scenario's `real_time`).
    private var realTime = false

    public init(rules: RuleSet) { self.rules = rules }

    /// What the bus would show: the `expect_usb` id of a restored, USB-connected board's rule.
    public var usbPresence: @Sendable (USBID) -> Bool {
        let connected = usbConnected
        let boards = self.boards
        let rules = self.rules
        return { id in
            connected.withCheckedLock { $0 }.contains { name, on in
                guard on, let board = boards.withCheckedLock({ $0[name] }) else { return false }
                return board.writes.value > 0 && rules.rules.contains { $0.expectUSB == id && $0.parts.contains { $0.id == board.part } }
            }
        }
    }

    /// What the bus would show of a restored, USB-connected board's Atmel DFU bootloader: a simulated one
    /// on the board's own chip, as the ISP restore left it.
    public var bootloaderOnBus: @Sendable (USBID) -> BenchBootloader? {
        let presence = usbPresence
        let dfuBoards = self.dfuBoards
        let connected = usbConnected
        return { id in
            guard presence(id) else { return nil }
            let on = connected.withCheckedLock { $0 }
            return dfuBoards.withCheckedLock { $0 }.first { name, board in board.usb == id && on[name] == true }?.value
        }
    }

    /// Runs the steps at their times (seconds from now), then returns.
    public func play(_ scenario: VirtualBenchScenario, on agent: Agent) throws(VirtualBenchError) {
        let start = Date()
        realTime = scenario.realTime
        for step in scenario.steps {
            let wait = step.at - Date().timeIntervalSince(start)
            if wait > 0 { SystemTimeSource().sleep(nanoseconds: UInt64(wait * 1e9)) }
            try apply(step.action, agent: agent)
        }
    }

    func apply(_ action: VirtualBenchScenario.Action, agent: Agent) throws(VirtualBenchError) {
        switch action {
        case let .plug(name, kind) where kind.isSerial:
            let box = SerialBox()
            box.replace(with: try serialBoard(kind: kind, part: nil))
            serial[name] = box
            agent.add(BenchProgrammer(id: name, kind: kind, serial: nil, port: "virtual-\(name)") {
                try box.open { path in
                    guard let path else { throw VirtualBenchError.file("no pseudo-terminal") }
                    return try ProgrammerRegistry.driver(for: kind).open(serialPath: path, time: SystemTimeSource())
                }
            })
        case let .attach(name, part, healthy, faults, _, _) where serial[name] != nil:
            let box = serial[name]!
            guard let kind = box.current?.kind else { throw .unknownProgrammer(name) }
            box.replace(with: try serialBoard(kind: kind, part: part, healthyRule: healthy, faults: faults))
            chips[name] = box.current?.chip
            if let chip = box.current?.chip { arrivals.append((DispatchTime.now().uptimeNanoseconds, chip)) }
        case let .detach(name) where serial[name] != nil:
            let box = serial[name]!
            guard let kind = box.current?.kind else { throw .unknownProgrammer(name) }
            box.replace(with: try serialBoard(kind: kind, part: nil))
        case let .unplug(name) where serial[name] != nil:
            let box = serial.removeValue(forKey: name)!
            agent.remove(id: name)
            box.replace(with: nil)
        case let .plug(name, kind):
            let clock = VirtualClock()
            let latencies = latencyBox
            let device = SwappableDevice(try board(kind: kind, part: nil, name: name, clock: clock),
                                         pacer: realTime ? RealTimePacer(clock: clock) : nil) { seconds in
                latencies.withCheckedLock { $0.append(seconds) }
            }
            devices[name] = (kind, device, clock)
            let serial = "VB-\(name)"
            agent.add(BenchProgrammer(id: name, kind: kind, serial: serial, port: "virtual-\(name)") {
                try ProgrammerRegistry.driver(for: kind).open(usb: device, time: clock)
            })
        case let .attach(name, part, healthy, faults, protected, enumerates):
            guard let entry = devices[name] else { throw .unknownProgrammer(name) }
            let attached = DispatchTime.now().uptimeNanoseconds
            entry.device.swap(to: try board(kind: entry.kind, part: part, name: name, clock: entry.clock, healthyRule: healthy, faults: faults, protected: protected))
            usbConnected.withCheckedLock { $0[name] = enumerates }
            if entry.kind != .stlink, let chip = chips[name] { arrivals.append((attached, chip)) }
        case let .detach(name):
            guard let entry = devices[name] else { throw .unknownProgrammer(name) }
            usbConnected.withCheckedLock { $0[name] = false }
            entry.device.swap(to: try board(kind: entry.kind, part: nil, name: name, clock: entry.clock))
        case let .unplug(name):
            guard let entry = devices.removeValue(forKey: name) else { throw .unknownProgrammer(name) }
            entry.device.unplug()
            agent.remove(id: name)
        }
    }

    /// A serial programmer on its own pseudo-terminal with `part` on its cable (nothing for nil).
    private func serialBoard(kind: ProgrammerKind, part: String?, healthyRule: String? = nil, faults: [SimulatedFault] = []) throws(VirtualBenchError) -> SimulatedBench {
        let (flash, fuses, lock) = contents(of: healthyRule, on: kind)
        let avr = try avrPart(named: part)
        do {
            return try SimulatedBench(kind: kind, part: avr, flash: flash, fuses: fuses, lock: lock, faults: Set(part == nil ? [.noTarget] : faults),
                                      imagePages: pagesToWrite(on: avr))
        } catch { throw .file(error.description) }
    }

    /// What a healthy board of `rule` holds: its bootloader (AVR flash from 0; STM32 from the image's start),
    /// fuses and lock bits.
    private func contents(of rule: String?, on kind: ProgrammerKind) -> (flash: [UInt8]?, fuses: FuseSet?, lock: UInt8?) {
        guard let rule, let found = rules.rule(named: rule), let image = try? found.loadFirmware().image else { return (nil, nil, nil) }
        let start = kind == .stlink ? image.lowestAddress ?? 0 : 0
        return (image.bytes(in: start..<UInt32(image.endAddress ?? 0)), found.fuses, found.lock)
    }

    /// How many flash pages the first rule for `part` writes, so that a mid-write fault strikes halfway.
    private func pagesToWrite(on part: AVRPart) -> Int {
        guard let rule = rules.rules.first(where: { $0.match.parts.contains(.avr(part)) }), let image = try? rule.loadFirmware().image else { return 32 }
        return max(2, (image.byteCount + part.flash.pageSize - 1) / part.flash.pageSize)
    }

    /// The AVR part named in the scenario; nil (an empty cable) stands for any part.
    private func avrPart(named part: String?) throws(VirtualBenchError) -> AVRPart {
        guard let part else { return PartCatalog.avrParts[1] }
        guard case let .avr(found)? = PartCatalog.part(named: part) else { throw .file("unknown part '\(part)'") }
        return found
    }

    /// The Atmel DFU bootloader a restored `chip` enumerates as, when a rule for its part expects one.
    private func atmelDFU(on chip: SimulatedAVR, name: String) -> BenchBootloader? {
        guard let id = rules.rules.first(where: { rule in rule.expectUSB != nil && rule.parts.contains { $0.id == chip.part.id } })?.expectUSB,
              case .bootloader(.atmelDFU)? = rules.deviceCatalog.entry(for: id, product: nil)?.role else { return nil }
        // The job that flashes through it runs after the ISP restore, on the slot's thread: never beside it.
        nonisolated(unsafe) let chip = chip
        return BenchBootloader(id: "virtual-\(name)-dfu", kind: .atmelDFU, usb: id, port: "virtual-\(name)-usb") {
            AtmelDFUBootloader(device: SimulatedAtmelDFU(chip: chip, productID: id.product), time: chip.clock)
        }
    }

    /// A programmer with `part` on its cable, or with nothing on it (part nil).
    private func board(kind: ProgrammerKind, part: String?, name: String, clock: VirtualClock, healthyRule: String? = nil,
                       faults: [SimulatedFault] = [], protected: Bool = false) throws(VirtualBenchError) -> USBDevice {
        let (flash, fuses, lock) = contents(of: healthyRule, on: kind)
        if kind == .stlink {
            guard let model = SimulatedSTM32Model.named(part ?? "stm32f103") else { throw .file("no simulated STM32 is '\(part ?? "")'") }
            do {
                let bench = try SimulatedSTM32Bench(model: model, flash: flash, protected: protected, faults: Set(part == nil ? [.noTarget] : faults), clock: clock)
                stm32[name] = bench.target
                return bench.device
            } catch { throw .file(error.description) }
        }
        let avr = try avrPart(named: part)
        do {
            let bench = try SimulatedBench(kind: kind, part: avr, flash: flash, fuses: fuses, lock: lock, faults: Set(part == nil ? [.noTarget] : faults),
                                           imagePages: pagesToWrite(on: avr), clock: clock)
            if part != nil {
                chips[name] = bench.chip
                boards.withCheckedLock { $0[name] = (bench.chip.part.id, bench.chip.pageWriteCount) }
                dfuBoards.withCheckedLock { $0[name] = atmelDFU(on: bench.chip, name: name) }
            }
            guard let device = bench.usbDevice else { throw VirtualBenchError.file("\(kind.rawValue) is not simulated on the virtual bench yet") }
            return device
        } catch let error as VirtualBenchError {
            throw error
        } catch {
            throw .file("\(error)")
        }
    }
}
