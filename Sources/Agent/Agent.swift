import DeviceTrace
import Dispatch
import FoundationEssentials
import Programmers
import Recovery
import Rules
import Synchronization
import Transport

/// The bench service: follows udev's events through the device catalog, gives each plugged programmer a
/// ``BenchSlot``, probes USB-serial devices that may carry programmer firmware, and writes everything to
/// one journal.
public final class Agent: Sendable {
    public let rules: RuleSet
    public let journal: JournalWriter
    public let backups: BackupStore?
    /// Where restores in progress are recorded, so that one cut short is finished by the next job.
    public let records: RestoreRecords?
    public let pollInterval: Double
    /// The built-in catalog with the rules file's `[[programmer]]` entries in front.
    public let catalog: DeviceCatalog

    private struct State {
        var slots: [String: BenchSlot] = [:]
        /// Slots whose programmer left and that are still winding down.
        var retiring: [BenchSlot] = []
        var stopping = false
        /// Every USB device on the bus, by syspath (for `expect_usb`).
        var present: [String: USBID] = [:]
        /// Serial probes queued or running, by tty syspath: a removal drops the entry, and a probe whose
        /// entry is gone when it ends adds no slot.
        var probing: [String: UInt64] = [:]
        var nextProbe: UInt64 = 0
        var presenceOverride: (@Sendable (USBID) -> Bool)?
        var expectUSBTimeout: Double = 10
        /// Boards waiting in a bootloader the agent flashes through, by syspath.
        var bootloaders: [String: BenchBootloader] = [:]
        var bootloaderOverride: (@Sendable (USBID) -> BenchBootloader?)?
        /// Flashes through a bootloader that arrived on its own (not after a restore), running or done.
        var bootloaderJobs: [WorkerThread] = []
        /// Until when a port whose board was just flashed through its bootloader is left alone: the
        /// STM32duino bootloader comes back on the bus for a second or two after the reset into the sketch.
        var settling: [String: ContinuousClock.Instant] = [:]
        /// Boards running a sketch that a job sends to their bootloader and flashes, by job.
        var touching: [String: TouchJob] = [:]
        /// The USB sockets whose board a job sent to its bootloader, and whether it was flashed: the
        /// sketch coming back there is that board's (its new application, or the old one after a failure),
        /// left alone until its port is unplugged.
        var touched: [String: Bool] = [:]
        /// The ttys of boards running a sketch that a touch rule names, by syspath: their USB socket.
        var sketches: [String: String] = [:]
        /// What each job outside the slots (a board in its bootloader, a touch) is doing, by job: for STATUS=.
        var boardJobs: [String: BoardJobStatus] = [:]
    }
    private let state = Mutex(State())
    private let probes: ProbeQueue
    /// Finds the programmer firmware, if any, on a USB-serial device's tty (the harmless probes).
    private let serialProbe: @Sendable (UdevDevice, [ProgrammerKind]) -> BenchProgrammer?

    /// Where every programmer's transfers (USB or serial) are recorded, when the agent runs with `--trace`.
    public let trace: TraceRecorder?

    /// - Parameter serialProbe: how a tty is probed; the real probes unless a test plays one.
    public init(rules: RuleSet, journal: JournalWriter, backups: BackupStore?, records: RestoreRecords? = nil, pollInterval: Double, trace: TraceRecorder? = nil,
                serialProbe: (@Sendable (UdevDevice, [ProgrammerKind]) -> BenchProgrammer?)? = nil) {
        self.trace = trace
        self.rules = rules
        self.journal = journal
        self.backups = backups
        self.records = records
        self.pollInterval = pollInterval
        catalog = rules.deviceCatalog
        self.serialProbe = serialProbe ?? { BenchProgrammer.probing($0, candidates: $1, trace: trace) }
        probes = ProbeQueue(workers: 2, capacity: 16)
    }

    /// Whether a USB device with these ids is on the bus now (for `expect_usb`): what udev reported,
    /// unless a virtual bench answers instead.
    public var usbPresence: @Sendable (USBID) -> Bool {
        get {
            state.withCheckedLock { state in
                state.presenceOverride ?? { [weak self] id in self?.state.withCheckedLock { $0.present.values.contains(id) } ?? false }
            }
        }
        set { state.withCheckedLock { $0.presenceOverride = newValue } }
    }

    /// The board waiting in a bootloader with these ids: what udev reported, unless a virtual bench
    /// answers instead.
    public var bootloaderOnBus: @Sendable (USBID) -> BenchBootloader? {
        get {
            state.withCheckedLock { state in
                state.bootloaderOverride ?? { [weak self] id in self?.state.withCheckedLock { $0.bootloaders.values.first { $0.usb == id } } ?? nil }
            }
        }
        set { state.withCheckedLock { $0.bootloaderOverride = newValue } }
    }

    /// How long a slot waits for a restored bootloader to enumerate.
    public var expectUSBTimeout: Double {
        get { state.withCheckedLock { $0.expectUSBTimeout } }
        set { state.withCheckedLock { $0.expectUSBTimeout = newValue } }
    }

    /// Journals the start and tells systemd the service is ready.
    public func start() {
        journal.write(JournalEntry(.agentStarted, "bootmedic agent started with \(rules.rules.count) rules from \(rules.path)"))
        if let records {
            let (pending, unreadable) = records.all()
            for record in pending {
                var fields = ["BOOTMEDIC_JOB": record.job, "BOOTMEDIC_PROGRAMMER": record.programmer, "BOOTMEDIC_STEP": record.step.rawValue,
                              "BOOTMEDIC_PART": record.part, "BOOTMEDIC_SIGNATURE": record.target, "BOOTMEDIC_RULE": record.rule]
                if let port = record.port { fields["BOOTMEDIC_PORT"] = port }
                if let backup = record.backup { fields["BOOTMEDIC_BACKUP"] = backup }
                journal.write(JournalEntry(.interruptedPending, "job \(record.job) left \(record.part) on \(record.programmerDescription) at \(record.port ?? "?") part-way (\(record.step.rawValue)); it is finished when that chip is found again", fields: fields))
            }
            for problem in unreadable { journal.write(JournalEntry(.notice, problem.description, priority: 4)) }
        }
        ServiceNotifier.notify("READY=1\nSTATUS=\(status)")
    }

    // MARK: udev

    /// What udev reported: a USB programmer gets a slot, a USB-serial device that may carry programmer
    /// firmware is probed off this thread, a removal ends its slot or its probe. Never blocks.
    public func handle(_ event: DeviceEvent) {
        switch event {
        case let .added(device):
            let id = USBID(vendor: device.vendorID, product: device.productID)
            if device.subsystem == "usb" { state.withCheckedLock { $0.present[device.syspath] = id } }
            if device.subsystem == "tty", let path = device.devnode, let rule = rules.touchRule(for: id, serial: device.serial, port: device.idPath) {
                return sketchArrived(BenchSketch(id: device.syspath, path: path, usb: id, port: device.idPath), rule: rule)
            }
            switch catalog.entry(for: id, product: device.product)?.role {
            case let .programmer(kind)? where device.subsystem == "usb":
                add(BenchProgrammer.usb(device, kind: kind, trace: trace))
            case let .serialCandidate(kinds)? where device.subsystem == "tty":
                probe(device, candidates: kinds)
            case let .bootloader(kind)? where BenchBootloader.subsystems[kind] == device.subsystem:
                if let bootloader = BenchBootloader.udev(device, kind: kind) { arrived(bootloader) }
            default:
                break
            }
        case let .removed(syspath):
            state.withCheckedLock {
                $0.present[syspath] = nil
                $0.probing[syspath] = nil
                $0.bootloaders[syspath] = nil
                // The board given its application through a touch was unplugged: the next one there is flashed.
                if let socket = $0.sketches.removeValue(forKey: syspath) {
                    $0.touched[socket] = nil
                    // The sketch went after it came back: unplugged before its job ended.
                    for (job, touch) in $0.touching where touch.sketch.socket == socket && touch.sketchCameBack { $0.touching[job]?.unplugged = true }
                }
            }
            remove(id: syspath)
        }
    }

    private func probe(_ device: UdevDevice, candidates: [ProgrammerKind]) {
        let token = state.withCheckedLock { state -> UInt64? in
            guard !state.stopping, state.probing[device.syspath] == nil else { return nil }
            state.nextProbe += 1
            state.probing[device.syspath] = state.nextProbe
            return state.nextProbe
        }
        guard let token else { return }
        let queued = probes.submit { [self] in
            let found = serialProbe(device, candidates)
            // Added only if the device is still there and this is still its probe.
            add(found, ifStillProbing: device.syspath, token: token)
        }
        if !queued {
            state.withCheckedLock { _ = $0.probing.removeValue(forKey: device.syspath) }
            journal.write(JournalEntry(.notice, "\(device.devnode ?? device.syspath): too many serial devices waiting to be probed; replug it to try again", priority: 4))
        }
    }

    private func add(_ programmer: BenchProgrammer?, ifStillProbing syspath: String, token: UInt64) {
        let current = state.withCheckedLock { state -> Bool in
            guard state.probing[syspath] == token else { return false }
            state.probing[syspath] = nil
            return true
        }
        if current, let programmer { add(programmer) }
    }

    // MARK: Boards in their bootloaders

    /// A board arrived in its bootloader. If a slot's restore is under way whose rules expect this
    /// bootloader, that slot flashes it as part of its job; otherwise, when any rule has an application
    /// to flash, a job of its own does (on a thread, so the udev thread never waits).
    public func arrived(_ bootloader: BenchBootloader) {
        let expectedBySlot = rules.rules.contains { $0.expectUSB == bootloader.usb && $0.application != nil }
        let start = state.withCheckedLock { state -> Bool in
            // udev's enumeration at start and its event may both report a device: one job for it.
            let known = state.bootloaders[bootloader.id] != nil
            state.bootloaders[bootloader.id] = bootloader
            guard !known, !state.stopping, rules.rules.contains(where: { $0.application != nil }) else { return false }
            if let until = state.settling[bootloader.port ?? bootloader.id], until > .now { return false }
            // A board a touch sent here: its job flashes it.
            if state.touching.values.contains(where: { $0.sketch.isSameBoard(bootloader) }) { return false }
            let restoring = state.slots.values.contains { if case .restoring = $0.state { return true }; return false }
            return !(restoring && expectedBySlot)
        }
        guard start else { return }
        let job = UUID().uuidString.replacing("-", with: "").lowercased()
        var fields = ["BOOTMEDIC_JOB": job, "BOOTMEDIC_BOOTLOADER": bootloader.kind.rawValue, "BOOTMEDIC_USB_ID": bootloader.usb.description]
        if let port = bootloader.port { fields["BOOTMEDIC_PORT"] = port }
        journal.write(JournalEntry(.targetFound, "\(bootloader.kind.description) at \(bootloader.port ?? bootloader.id): a board waits in its bootloader", fields: fields))
        setStatus(of: job, BoardJobStatus(place: bootloader.port ?? bootloader.id, doing: "flashing through \(bootloader.kind.description)"))
        let thread = WorkerThread(name: "bootloader \(bootloader.port ?? bootloader.id)") { [self] thread in
            defer { setStatus(of: job, nil) }
            let result = bootloader.flash(job: job, ruleName: nil, rules: rules, backups: backups, journal: journal) { thread.isStopRequested }
            if result?.failure == nil, bootloader.kind.comesBackAfterReset {
                state.withCheckedLock { $0.settling[bootloader.port ?? bootloader.id] = .now + Self.settlingTime }
            }
        }
        state.withCheckedLock { state in
            state.bootloaderJobs.removeAll { $0.join(timeout: 0) }
            state.bootloaderJobs.append(thread)
        }
    }

    /// A board running a sketch that `rule` sends to its bootloader: a job of its own (on a thread) sends
    /// the 1200-baud touch, waits for the bootloader in the board's socket and flashes the rule's
    /// application through it. Once flashed, the board's sketch coming back is left alone until unplugged.
    private func sketchArrived(_ sketch: BenchSketch, rule: Rule) {
        let job = UUID().uuidString.replacing("-", with: "").lowercased()
        var fields = ["BOOTMEDIC_USB_ID": sketch.usb.description, "BOOTMEDIC_RULE": rule.name]
        if let port = sketch.port { fields["BOOTMEDIC_PORT"] = port }
        enum Verdict { case touch, handled(flashed: Bool), ignore }
        let verdict = state.withCheckedLock { state -> Verdict in
            // udev's enumeration at start and its event may both report the tty: the second report is
            // the same sketch, not its return.
            let reportedAgain = state.sketches[sketch.id] != nil
            state.sketches[sketch.id] = sketch.socket
            guard !state.stopping else { return .ignore }
            // Its job is under way: the sketch comes back as the application starts.
            if let running = state.touching.first(where: { $0.value.sketch.socket == sketch.socket })?.key {
                if !reportedAgain { state.touching[running]?.sketchCameBack = true }
                return .ignore
            }
            if let flashed = state.touched[sketch.socket] { return .handled(flashed: flashed) }
            state.touching[job] = TouchJob(sketch: sketch)
            return .touch
        }
        switch verdict {
        case .ignore: return
        case let .handled(flashed):
            let where_ = sketch.port ?? sketch.path
            journal.write(JournalEntry(.notice, flashed ? "\(sketch.name) at \(where_) runs the application it was just given; unplug it to flash the next board there"
                                           : "\(sketch.name) at \(where_) was not flashed through its bootloader (see its job); unplug it and plug it in again to retry", priority: 5, fields: fields))
            return
        case .touch: fields["BOOTMEDIC_JOB"] = job
        }
        journal.write(JournalEntry(.targetFound, "\(sketch.name) at \(sketch.port ?? sketch.path): rule '\(rule.name)' sends it to its bootloader (1200-baud touch)", fields: fields))
        let place = sketch.port.map(BenchSketch.socket(of:)) ?? sketch.path
        setStatus(of: job, BoardJobStatus(place: place, doing: "sending \(sketch.name) to its bootloader"))
        let thread = WorkerThread(name: "touch \(sketch.port ?? sketch.path)") { [self, fields] thread in
            var flashed = false
            defer {
                setStatus(of: job, nil)
                state.withCheckedLock { [flashed] state in
                    if state.touching.removeValue(forKey: job)?.unplugged == false { state.touched[sketch.socket] = flashed }
                }
            }
            let bootloader: BenchBootloader
            do throws(TouchError) {
                bootloader = try sketch.enterBootloader(timeout: expectUSBTimeout) { [self] in
                    thread.isStopRequested ? nil : state.withCheckedLock { $0.bootloaders.values.first(where: sketch.isSameBoard) }
                }
            } catch {
                var failed = fields
                failed["BOOTMEDIC_REASON"] = error.description
                journal.write(JournalEntry(error.isMissing ? .bootloaderMissing : .failed, "job \(job): \(error)", fields: failed))
                return
            }
            var enumerated = fields
            enumerated["BOOTMEDIC_BOOTLOADER"] = bootloader.kind.rawValue
            enumerated["BOOTMEDIC_USB_ID"] = bootloader.usb.description
            journal.write(JournalEntry(.bootloaderEnumerated, "job \(job): the board came up in \(bootloader.kind.description) as \(bootloader.usb) at \(bootloader.port ?? bootloader.id)", fields: enumerated))
            setStatus(of: job, BoardJobStatus(place: place, doing: "flashing through \(bootloader.kind.description)"))
            let result = bootloader.flash(job: job, ruleName: rule.name, rules: rules, backups: backups, journal: journal) { thread.isStopRequested }
            flashed = result.map { $0.failure == nil } ?? false
        }
        state.withCheckedLock { state in
            state.bootloaderJobs.removeAll { $0.join(timeout: 0) }
            state.bootloaderJobs.append(thread)
        }
    }

    /// How long a board's bootloader coming back at the port it was just flashed on is taken for the
    /// board restarting, not for a new board.
    static let settlingTime = Duration.seconds(6)

    // MARK: Slots

    /// A programmer arrived: give it a slot (a second report of the same device is ignored).
    public func add(_ programmer: BenchProgrammer) {
        let context = SlotContext(rules: rules, journal: journal, backups: backups, records: records, pollInterval: pollInterval,
                                  expectUSBTimeout: expectUSBTimeout, usbPresence: usbPresence, bootloaderOnBus: bootloaderOnBus)
        let slot: BenchSlot? = state.withCheckedLock { state in
            guard !state.stopping, state.slots[programmer.id] == nil else { return nil }
            let slot = BenchSlot(programmer: programmer, context: context)
            state.slots[programmer.id] = slot
            return slot
        }
        guard let slot else { return }
        journal.write(JournalEntry(.programmerAdded, "\(programmer.kind.description) plugged in at \(programmer.port ?? programmer.id)", fields: programmer.fields))
        slot.start()
        notifyStatus()
    }

    /// A programmer left: its slot stops at its next safe point and journals the removal itself. Returns at once.
    public func remove(id: String) {
        let slot = state.withCheckedLock { state -> BenchSlot? in
            state.retiring.removeAll { $0.hasEnded }
            guard let slot = state.slots.removeValue(forKey: id) else { return nil }
            state.retiring.append(slot)
            return slot
        }
        guard let slot else { return }
        slot.unplug()
        notifyStatus()
    }

    /// No new jobs; every slot stops at its next safe point, and this waits until all have.
    public func stop() {
        ServiceNotifier.notify("STOPPING=1")
        let (active, retiring, flashes) = state.withCheckedLock { state in
            state.stopping = true
            state.probing.removeAll()
            defer { state.slots.removeAll(); state.retiring.removeAll(); state.bootloaderJobs.removeAll() }
            return (Array(state.slots.values), state.retiring, state.bootloaderJobs)
        }
        probes.stop()
        flashes.forEach { $0.requestStop() }
        flashes.forEach { $0.join() }
        // The removed slots first, so that their last words come before the agent's.
        retiring.forEach { $0.join() }
        journal.write(JournalEntry(.agentStopping, "bootmedic agent stopping"))
        active.forEach { $0.requestStop() }
        active.forEach { $0.join() }
    }

    /// Serial probes queued or running (including the slot each may add): zero once every tty reported
    /// so far has been probed and decided.
    public var serialProbesUnderWay: Int { probes.underWay }

    /// The slots by programmer id.
    public var currentSlots: [String: BenchSlot] { state.withCheckedLock { $0.slots } }

    /// One line for STATUS=: what every slot is doing, then every board flashed through its bootloader
    /// outside a slot.
    public var status: String {
        let (slots, boards) = state.withCheckedLock { ($0.slots, $0.boardJobs) }
        let slotLines = slots.sorted { $0.key < $1.key }.map { "\($0.value.programmer.port ?? $0.key): \($0.value.state)" }
        let boardLines = boards.sorted { ($0.value.place, $0.key) < ($1.value.place, $1.key) }.map { "\($0.value.place): \($0.value.doing) (job \($0.key))" }
        return ((slotLines.isEmpty ? ["no programmer plugged in"] : slotLines) + boardLines).joined(separator: "; ")
    }

    public func notifyStatus() { ServiceNotifier.notify("STATUS=\(status)") }

    /// Records what a job outside the slots is doing (nil: it ended) and tells systemd.
    private func setStatus(of job: String, _ status: BoardJobStatus?) {
        state.withCheckedLock { $0.boardJobs[job] = status }
        notifyStatus()
    }
}

/// What a job outside the slots is doing, for STATUS=.
struct BoardJobStatus {
    /// The board's USB socket (udev's ID_PATH), else its syspath or tty.
    let place: String
    /// "flashing through Atmel DFU", "sending Arduino Leonardo to its bootloader".
    let doing: String
}

/// A job that sends a board running a sketch to its bootloader and flashes it.
struct TouchJob {
    let sketch: BenchSketch
    /// The sketch's port came back during the job (the application started).
    var sketchCameBack = false
    /// …and went again before the job ended: the board was unplugged.
    var unplugged = false
}

/// A few worker threads taking jobs from a bounded queue: serial probes take seconds each, and neither
/// the udev thread nor an unbounded number of threads may wait for them.
final class ProbeQueue: Sendable {
    private final class Jobs: Sendable {
        let queued = Mutex<[@Sendable () -> Void]>([])
        let available = DispatchSemaphore(value: 0)
        /// Jobs submitted and not yet finished.
        let underWay = Atomic<Int>(0)
    }
    private let jobs = Jobs()
    private let capacity: Int
    private let workers: [WorkerThread]

    init(workers count: Int, capacity: Int) {
        self.capacity = capacity
        let jobs = self.jobs
        workers = (0..<count).map { n in
            WorkerThread(name: "serial probe \(n)") { thread in
                while !thread.isStopRequested {
                    // No timeout: stop() signals once per worker, so an idle queue costs no wake-ups.
                    jobs.available.wait()
                    guard let job = jobs.queued.withCheckedLock({ $0.isEmpty ? nil : $0.removeFirst() }) else { continue }
                    job()
                    jobs.underWay.subtract(1, ordering: .releasing)
                }
            }
        }
    }

    /// Queues `job`; false when the queue is full.
    func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        let queued = jobs.queued.withCheckedLock { queued -> Bool in
            guard queued.count < capacity else { return false }
            queued.append(job)
            jobs.underWay.add(1, ordering: .relaxed)
            return true
        }
        if queued { jobs.available.signal() }
        return queued
    }

    /// Jobs submitted and not yet finished.
    var underWay: Int { jobs.underWay.load(ordering: .acquiring) }

    /// Drops what is queued and waits for the probes under way.
    func stop() {
        jobs.queued.withCheckedLock { queued in
            jobs.underWay.subtract(queued.count, ordering: .relaxed)
            queued.removeAll()
        }
        workers.forEach { $0.requestStop() }
        workers.forEach { _ in jobs.available.signal() }
        workers.forEach { $0.join() }
    }
}

extension BenchProgrammer {
    /// A USB programmer udev reported, opened through libusb by its bus and address when the slot needs it.
    static func usb(_ device: UdevDevice, kind: ProgrammerKind, trace: TraceRecorder?) -> BenchProgrammer {
        BenchProgrammer(id: device.syspath, kind: kind, serial: device.serial, port: device.idPath) {
            let usb = try device.openUSB()
            return try ProgrammerRegistry.driver(for: kind).open(usb: trace?.recording(usb) ?? usb, time: SystemTimeSource())
        }
    }

    /// The real harmless probes on a USB-serial device's tty: the programmer that answers, or nil.
    static func probing(_ device: UdevDevice, candidates: [ProgrammerKind], trace: TraceRecorder?) -> BenchProgrammer? {
        guard let path = device.devnode,
              let kind = ProgrammerRegistry.identifySerialProgrammer(at: path, candidates: candidates, time: SystemTimeSource()) else { return nil }
        return BenchProgrammer(id: device.syspath, kind: kind, serial: device.serial, port: device.idPath) {
            try ProgrammerRegistry.driver(for: kind).open(serialPath: path, time: SystemTimeSource(), trace: trace)
        }
    }
}
