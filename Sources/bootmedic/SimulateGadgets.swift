import BenchModel
import DeviceCatalog
import Dispatch
import FirmwareImage
import FoundationEssentials
import Glibc
import Simulation
import Synchronization
import Transport

/// `simulate --functionfs`: the simulators served as real USB gadgets through the kernel's FunctionFS.
extension SimulateCommand {
    /// The USB programmer's simulator behind a FunctionFS ep0: each control request the host sends
    /// through the real kernel reaches the simulator exactly as the in-process tests call it. The kernel
    /// carries the USB frames; the programmer's and the chip's own times (SPI bits, write waits) are
    /// served in real time, so a restore through the gadget takes as long as on the hardware.
    func serveGadget(at directory: String, chip: SimulatedAVR) throws {
        guard let programmer else { throw fail("--functionfs serves a USB programmer") }
        let device = simulatedUSBProgrammer(programmer, chip: chip)
        device.linkTiming = .carriedElsewhere
        let pace = RealTimePacer(clock: chip.clock)
        let endpoint: FunctionFSEndpointZero
        do { endpoint = try FunctionFSEndpointZero(directory: directory) } catch { throw fail(error.description) }
        let signals = announce("ready")
        var requests = 0
        // The programmer's busy span, first request to last answer: the client's job without its start-up.
        var firstRequest: UInt64?, lastAnswer: UInt64 = 0
        // CLOCK_MONOTONIC at the first request, as udev's USEC_INITIALIZED counts: plug-to-command latency.
        var firstRequestMonotonic: UInt64 = 0
        let flashWrites = chip.pageWrites
        var announcedWriting = false
        do {
            try endpoint.serve(until: { signals.wait(until: .now()) }) { setup, data in
                requests += 1
                pace.catchUp()
                if firstRequest == nil {
                    firstRequest = chip.clock.now
                    var now = timespec()
                    clock_gettime(CLOCK_MONOTONIC, &now)
                    firstRequestMonotonic = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
                }
                defer {
                    pace.holdBack()
                    lastAnswer = chip.clock.now
                }
                // For scripts that act mid-write (pull the programmer, say): one line when flash is first written.
                if !announcedWriting, chip.pageWrites > flashWrites {
                    announcedWriting = true
                    print("writing")
                    fflush(nil)
                }
                if setup.isDeviceToHost {
                    return try? device.controlIn(request: setup.request, value: setup.value, index: setup.index,
                                                 length: Int(setup.length), timeoutMilliseconds: 5000)
                }
                return (try? device.controlOut(request: setup.request, value: setup.value, index: setup.index,
                                               data: data, timeoutMilliseconds: 5000)).map { _ in [] }
            }
        } catch { throw fail(error.description) }
        let busy = Double(lastAnswer - (firstRequest ?? lastAnswer)) / 1e9
        try finish(chip: chip, summary: String(cFormat: "{\"seconds\": %.6f, \"controlRequests\": %d, \"busySeconds\": %.6f, \"firstRequestMonotonicMicroseconds\": %llu}\n",
                                               chip.clock.seconds, requests, busy, firstRequestMonotonic))
    }

    /// An ST-Link/V2 (0483:3748's endpoints: commands and data on 0x02, replies on 0x81, trace on 0x83)
    /// behind FunctionFS, wired to a simulated STM32 (`--part`: a Bluepill, one of its clones or a Black
    /// Pill). Bulk transfers are served on their own thread; ep0 carries nothing vendor-specific.
    func serveSTLinkGadget(at directory: String) throws {
        let model = try simulatedSTM32Model(chipOptions.part)
        let target = SimulatedSTM32(model: model, clock: VirtualClock(), flash: try chipOptions.initialFlash.map { try readBinary($0) },
                                    readProtected: readProtected)
        let stlink = SimulatedSTLink(target: target)
        stlink.carriesUSBTiming = false
        let endpoint: FunctionFSEndpointZero
        let session: STLinkGadgetSession
        do {
            endpoint = try FunctionFSEndpointZero(directory: directory, bulkEndpoints: [0x81, 0x02, 0x83])
            session = STLinkGadgetSession(stlink: stlink, commands: try endpoint.bulkEndpoint(0x02), replies: try endpoint.bulkEndpoint(0x81))
        } catch { throw fail(error.description) }
        let signals = announce("ready")
        session.start()
        do { try endpoint.serve(until: { signals.wait(until: .now()) }) { _, _ in nil } } catch { throw fail(error.description) }
        let (summary, flash) = session.withSimulator { stlink in
            let target = stlink.target
            let summary = String(cFormat: "{\"seconds\": %.6f, \"bulkTransfers\": %d, \"readProtected\": ", target.clock.seconds, stlink.transfers)
                + (target.isReadProtected ? "true" : "false")
                + String(cFormat: ", \"massErases\": %d, \"unitsErased\": %d, \"accessesProgrammed\": %d}\n",
                         target.massErases, target.unitsErased, target.accessesProgrammed)
            return (summary, target.flash)
        }
        try finish(flash: flash, summary: summary)
    }

    /// Reports the session and writes an STM32's flash and the summary to --state.
    func finish(flash: [UInt8], summary: String) throws {
        printError("simulated: " + summary.trimmingWhitespace)
        guard let state else { return }
        do {
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            try Data(flash).write(to: URL(fileURLWithPath: state + "/flash.bin"))
            try summary.write(toFile: state + "/session.json", atomically: true, encoding: .utf8)
        } catch { throw fail("cannot write the state to \(state): \(InputFile.reason(error))") }
    }

    /// An STM32 board in its bootloader — the STM32duino's Maple DFU on an F103, or ST's system
    /// bootloader (DfuSe) — on the kernel's virtual host controller (USB/IP), where it gives its own
    /// descriptors: the DFU functional descriptor and the alternate settings that name its memories,
    /// which a FunctionFS gadget cannot carry on Linux 6.1. Prints "ready" once attached, "writing" at the
    /// first block written and "left" when the bootloader starts the application, and then unplugs. The
    /// virtual bus carries no USB reset (vhci_hcd resets its port by itself): the kernel's re-enumeration
    /// of a configured device (its 64-byte read of the device descriptor, through to SET_CONFIGURATION)
    /// is taken as one.
    func serveOnVirtualBus(_ kind: BootloaderKind) throws {
        let model = try simulatedSTM32Model(chipOptions.part)
        if kind == .stm32duino, model.family.id != .f1 { throw fail("the STM32duino bootloader runs on the STM32F1, not on \(model.description)") }
        let chip = SimulatedSTM32(model: model, clock: VirtualClock(), flash: try chipOptions.initialFlash.map { try readBinary($0) },
                                  readProtected: readProtected)
        let device: SimulatedSTM32DFU = kind == .stm32duino ? SimulatedMapleDFU(chip: chip) : SimulatedDfuSe(chip: chip)
        device.linkTiming = .carriedElsewhere
        let pace = RealTimePacer(clock: chip.clock)
        let attachment: USBIPAttachment
        do { attachment = try USBIPAttachment() } catch { throw fail(error.description) }
        let signals = announce("ready")
        var requests = 0, configured = false, resetSeen = false, announcedWriting = false
        var rebootedAt: ContinuousClock.Instant?
        do {
            try attachment.serve(until: {
                // Half a second after the board came back through a reset, the bootloader takes it as its cue.
                if let rebooted = rebootedAt, ContinuousClock.now - rebooted > .milliseconds(500) { try? device.resetDevice(); rebootedAt = nil }
                return signals.wait(until: .now()) || device.hasLeft
            }) { setup, data in
                guard let target = USBControlTarget(requestType: setup.requestType) else { return nil }
                requests += 1
                pace.catchUp()
                defer {
                    pace.holdBack()
                    if !announcedWriting, device.blocksWritten > 0 { announcedWriting = true; print("writing"); fflush(nil) }
                }
                if target.kind == .standard, setup.request == 0x06, setup.value == 0x0100, setup.length == 64, configured { resetSeen = true }
                let configuring = target.kind == .standard && setup.request == 0x09
                let reply = setup.isDeviceToHost
                    ? try? device.controlIn(to: target, request: setup.request, value: setup.value, index: setup.index,
                                            length: Int(setup.length), timeoutMilliseconds: 5000)
                    : (try? device.controlOut(to: target, request: setup.request, value: setup.value, index: setup.index,
                                              data: data, timeoutMilliseconds: 5000)).map { _ in [] }
                // The board comes back through the reset as the same device (the host's reset succeeds, as
                // with a real STM32duino, whose bootloader runs again for a while); one that took the reset
                // as its cue leaves after that.
                if configuring {
                    if resetSeen { rebootedAt = .now }
                    (configured, resetSeen) = (true, false)
                }
                return reply
            }
        } catch { throw fail(error.description) }
        attachment.unplug()
        if device.hasLeft { print("left"); fflush(nil) }
        let summary = String(cFormat: "{\"seconds\": %.6f, \"controlRequests\": %d, \"blocksWritten\": %d, \"left\": ", chip.clock.seconds, requests, device.blocksWritten)
            + (device.hasLeft ? "true" : "false") + "}\n"
        try finish(flash: chip.flash, summary: summary)
    }
}

extension SimulateCommand {
    /// A USB bootloader on the simulated chip behind FunctionFS: Atmel DFU (a DFU-mode interface,
    /// 0xFE/01/02, class requests), USBaspLoader (vendor-specific, the USBasp requests), HalfKay or
    /// BootloadHID (a HID interface: its report descriptor, SET_REPORT and GET_REPORT). Each control
    /// request reaches the simulator as the in-process tests send it, the chip's write times served in
    /// real time. Prints "writing" at the first flash page written and "left" when told to start the
    /// application, after which it answers nothing (the script unbinds the gadget).
    func serveBootloaderGadget(_ kind: BootloaderKind, at directory: String, chip: SimulatedAVR) throws {
        let device: SimulatedControlDevice
        var interfaceClass = USBInterfaceClass.vendorSpecific
        var reportDescriptorLength: Int?
        let hasLeft: () -> Bool
        switch kind {
        case .atmelDFU:
            guard let productID = DeviceCatalog.atmelDFUProductID(for: chip.part.id) else {
                throw fail("Atmel's DFU bootloader runs on the USB AVRs, not on \(chip.part.name)")
            }
            let dfu = SimulatedAtmelDFU(chip: chip, productID: productID, secured: readProtected)
            (device, interfaceClass, hasLeft) = (dfu, .dfuMode, { dfu.hasLeft })
        case .halfkay:
            let halfkay: SimulatedHalfKay
            do { halfkay = try SimulatedHalfKay(chip: chip) } catch { throw fail(error.description) }
            (device, reportDescriptorLength, hasLeft) = (halfkay, halfkay.reportDescriptor.count, { halfkay.hasLeft })
        case .bootloadhid:
            let loader = SimulatedBootloadHID(chip: chip)
            (device, reportDescriptorLength, hasLeft) = (loader, loader.reportDescriptor.count, { loader.hasLeft })
        default:
            let loader = SimulatedUSBaspLoader(chip: chip)
            (device, hasLeft) = (loader, { loader.hasLeft })
        }
        device.linkTiming = .carriedElsewhere
        let pace = RealTimePacer(clock: chip.clock)
        let endpoint: FunctionFSEndpointZero
        do {
            endpoint = try FunctionFSEndpointZero(directory: directory, interfaceClass: interfaceClass, hidReportDescriptorLength: reportDescriptorLength)
        } catch { throw fail(error.description) }
        let signals = announce("ready")
        let flashWrites = chip.pageWrites
        var requests = 0, announcedWriting = false, announcedLeaving = false
        do {
            try endpoint.serve(until: { signals.wait(until: .now()) }) { setup, data in
                guard let target = USBControlTarget(requestType: setup.requestType) else { return nil }
                requests += 1
                pace.catchUp()
                defer {
                    pace.holdBack()
                    if !announcedWriting, chip.pageWrites > flashWrites { announcedWriting = true; print("writing"); fflush(nil) }
                    if !announcedLeaving, hasLeft() { announcedLeaving = true; print("left"); fflush(nil) }
                }
                if setup.isDeviceToHost {
                    return try? device.controlIn(to: target, request: setup.request, value: setup.value, index: setup.index,
                                                 length: Int(setup.length), timeoutMilliseconds: 5000)
                }
                return (try? device.controlOut(to: target, request: setup.request, value: setup.value, index: setup.index,
                                               data: data, timeoutMilliseconds: 5000)).map { _ in [] }
            }
        } catch { throw fail(error.description) }
        let summary = String(cFormat: "{\"seconds\": %.6f, \"controlRequests\": %d, \"pageWrites\": %d, \"left\": ",
                             chip.clock.seconds, requests, chip.pageWrites - flashWrites) + (hasLeft() ? "true" : "false") + "}\n"
        try finish(chip: chip, summary: summary)
    }
}

/// The bulk side of an ST-Link gadget: takes each command (and the data a write command announced) from
/// the OUT endpoint, runs it on the simulator, and hands any reply to the IN endpoint. The simulator is
/// held in a mutex, so the main thread can read the chip's state once serving ends.
final class STLinkGadgetSession: Sendable {
    private let stlink: Mutex<SimulatedSTLink>
    private let commands: FunctionFSBulkEndpoint
    private let replies: FunctionFSBulkEndpoint
    private let pace: RealTimePacer

    init(stlink: sending SimulatedSTLink, commands: FunctionFSBulkEndpoint, replies: FunctionFSBulkEndpoint) {
        pace = RealTimePacer(clock: stlink.target.clock)
        self.stlink = Mutex(stlink)
        self.commands = commands
        self.replies = replies
    }

    func withSimulator<T: Sendable>(_ body: (SimulatedSTLink) -> T) -> T { stlink.withCheckedLock { body($0) } }

    func start() {
        _ = WorkerThread(name: "stlink gadget") { [self] _ in serve() }
    }

    private func serve() {
        var announcedWriting = false
        while true {
            let data: [UInt8]
            do {
                // A command comes as one short packet; write data exactly as long as its command said.
                data = try commands.read(maximum: withSimulator { $0.awaitedDataBytes } ?? 64)
            } catch .disconnected {
                usleep(50_000)   // unbound or deconfigured: wait for the host to configure the gadget again
                continue
            } catch {
                printError("simulate: \(error)")
                return
            }
            let reply: [UInt8]? = withSimulator { stlink in
                pace.catchUp()
                defer { pace.holdBack() }
                _ = try? stlink.bulkWrite(endpoint: 0x02, data: data, timeoutMilliseconds: 5000)
                guard stlink.pendingReplyCount > 0 else { return nil }
                return try? stlink.bulkRead(endpoint: 0x81, length: stlink.pendingReplyCount, timeoutMilliseconds: 5000)
            }
            if !announcedWriting, withSimulator({ $0.target.accessesProgrammed > 0 }) {
                announcedWriting = true
                print("writing")
                fflush(nil)
            }
            if let reply { try? replies.write(reply) }
        }
    }
}

extension SimulateCommand {
    /// A Caterina board on the kernel's virtual host controller (USB/IP), as a CDC ACM device with its own
    /// descriptors (an ACM tty gadget's side cannot see the line coding the host sets). With
    /// --running-sketch it first runs a sketch (a Leonardo's ids, 2341:8036): the 1200-baud touch (line
    /// coding 1200 with DTR dropped, as Arduino's USB core watches for it) makes it leave the bus and come
    /// back in the same socket as Caterina (2341:0036), which starts the sketch again when told to or
    /// after eight seconds without a command, as the real bootloader does. Prints "ready" once attached,
    /// "touched", "bootloader" when Caterina is on the bus, "writing" at the first page written and
    /// "left" when the sketch starts again.
    func serveCaterinaOnVirtualBus(chip: SimulatedAVR) throws {
        let leonardo = DeviceCatalog.builtIn.entries.first { $0.usb == USBID(vendor: 0x2341, product: 0x8036) }
        let bootIDs = leonardo?.bootloaderAfterTouch ?? USBID(vendor: 0x2341, product: 0x0036)
        let pace = RealTimePacer(clock: chip.clock)
        var signals: TerminationSignals?
        func say(_ line: String) {
            guard signals != nil else { signals = announce(line); return }
            print(line)
            fflush(nil)
        }
        var stopRequested = false
        func stopped() -> Bool {
            if !stopRequested, signals?.wait(until: .now()) == true { stopRequested = true }
            return stopRequested
        }
        var port: Int?
        var phases = 0, pageWritesAtStart = chip.pageWrites, announcedWriting = false
        repeat {
            if runningSketch {
                let sketch = SimulatedCDCACM(description: USBDeviceDescription(vendorID: 0x2341, productID: 0x8036, manufacturer: "Arduino LLC", product: "Arduino Leonardo"))
                var touched = false
                sketch.onLineChange = { line in if line.baudRate == 1200, !line.dataTerminalReady { touched = true } }
                let attachment: USBIPAttachment
                do { attachment = try USBIPAttachment(port: port) } catch { throw fail(error.description) }
                port = attachment.port
                say(phases == 0 ? "ready" : "sketch")
                do {
                    try attachment.serve(until: { touched || stopped() }, control: { sketch.control($0, data: $1) },
                                         outTransfer: { sketch.received($0, on: $1) }, inTransfer: { sketch.answer($0, maximum: $1) })
                } catch { throw fail(error.description) }
                attachment.unplug()
                guard touched else { break }
                say("touched")
            }
            let caterina = SimulatedCaterina(chip: chip)
            let device = SimulatedCDCACM(description: USBDeviceDescription(vendorID: bootIDs.vendor, productID: bootIDs.product, manufacturer: "Arduino LLC", product: "Arduino Leonardo"))
            var lastActivity = ContinuousClock.now
            device.exchange = { bytes in
                lastActivity = .now
                pace.catchUp()
                defer {
                    pace.holdBack()
                    if !announcedWriting, chip.pageWrites > pageWritesAtStart { announcedWriting = true; print("writing"); fflush(nil) }
                }
                return caterina.receive(bytes)
            }
            let attachment: USBIPAttachment
            do { attachment = try USBIPAttachment(port: port) } catch { throw fail(error.description) }
            port = attachment.port
            say(runningSketch ? "bootloader" : "ready")
            // Caterina's own timeout: eight seconds without a command, and the sketch runs again. Any
            // request counts (the host configuring the board, opening its tty), so that a slow host's
            // udev does not eat the time before the first command.
            let timedOut = { ContinuousClock.now - lastActivity > .seconds(8) }
            // After 'E' the host's close (its line settings restored, DTR dropped) is answered until the line
            // is quiet: a request left unread in the virtual bus's socket when the board goes would wait out
            // the kernel's 5 s control timeout, which a real board's detach never costs.
            var leftAt: ContinuousClock.Instant?
            let finished = {
                guard caterina.hasHungUp else { return timedOut() || stopped() }
                let now = ContinuousClock.now
                guard let leftAt else { leftAt = now; lastActivity = now; return false }
                return now - lastActivity > .milliseconds(100) || now - leftAt > .seconds(1)
            }
            do {
                try attachment.serve(until: finished,
                                     control: { setup, data in
                                         lastActivity = .now
                                         return device.control(setup, data: data)
                                     },
                                     outTransfer: { device.received($0, on: $1) }, inTransfer: { device.answer($0, maximum: $1) })
            } catch { throw fail(error.description) }
            attachment.unplug()
            guard caterina.hasHungUp || timedOut() else { break }
            say("left")
            phases += 1
            pageWritesAtStart = chip.pageWrites
            announcedWriting = false
        } while runningSketch && !stopped()
        if signals == nil { signals = announce("ready") }
        if !stopped() { signals?.wait() }
        try finish(chip: chip, summary: String(cFormat: "{\"seconds\": %.6f, \"bootloaderSessions\": %d}\n", chip.clock.seconds, phases))
    }
}
