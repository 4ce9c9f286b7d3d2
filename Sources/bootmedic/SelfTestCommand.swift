import Agent
import ArgumentParser
import BenchModel
import Dispatch
import FoundationEssentials
import Glibc
import Recovery
import Rules
import Synchronization
import Transport

/// Checks that need a private network namespace; run as `unshare -n bootmedic self-test netlink`.
struct SelfTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "self-test",
        abstract: "Prove the udev path against real netlink (run inside `unshare -n`).",
        shouldDisplay: false)

    @Argument(help: "netlink (inside `unshare -n`), or enumerate (what the agent's udev enumeration finds)")
    var what: String

    func run() throws {
        if what == "enumerate" { return try enumerate() }
        guard what == "netlink" else { throw fail("unknown self-test '\(what)'") }
        // A real libudev monitor, fed real netlink messages; the agent gives the programmer a slot and
        // takes it away again.
        let watcher = try DeviceWatcher()
        final class Events: Sendable { let list = Mutex<[String]>([]) }
        let events = Events()
        guard let rules = RulesFile.parse("", path: "-").ruleSet else { throw fail("empty rules") }
        final class Lines: JournalWriter {
            let state = Mutex<(list: [String], firstSlot: Date?)>(([], nil))
            func write(_ entry: JournalEntry) {
                state.withCheckedLock { state in
                    state.list.append(entry.kind.rawValue)
                    if entry.kind == .programmerAdded, state.firstSlot == nil { state.firstSlot = Date() }
                }
            }
        }
        let journal = Lines()
        let agent = Agent(rules: rules, journal: journal, backups: nil, pollInterval: 0.05)
        // The async sequence the watcher offers, consumed the way an async caller would.
        let stream = watcher.events()
        let consumer = Task {
            for await event in stream {
                switch event {
                case let .added(device):
                    events.list.withCheckedLock { $0.append("add \(device.syspath) \(String(cFormat: "%04x:%04x", device.vendorID, device.productID)) \(device.product ?? "-") \(device.idPath ?? "-")") }
                    agent.handle(event)
                case let .removed(syspath):
                    events.list.withCheckedLock { $0.append("remove \(syspath)") }
                    agent.handle(event)
                }
            }
        }
        let injector = try UeventInjector()
        let devpath = "/devices/pci0000:00/0000:00:14.0/usb1/1-2"
        let common = [("DEVPATH", devpath), ("SUBSYSTEM", "usb"), ("DEVTYPE", "usb_device"), ("ID_VENDOR_ID", "16c0"), ("ID_MODEL_ID", "05dc"),
                      ("ID_MODEL", "USBasp"), ("ID_SERIAL_SHORT", "NETLINK1"), ("ID_PATH", "pci-0000:00:14.0-usb-0:2"), ("BUSNUM", "001"), ("DEVNUM", "007")]
        let sent = Date()
        try injector.send([("ACTION", "add")] + common + [("SEQNUM", "1")])
        usleep(300_000)
        let slotsAfterAdd = agent.currentSlots.count
        try injector.send([("ACTION", "remove")] + common + [("SEQNUM", "2")])
        // A device of another subsystem: the monitor's filter must drop it.
        try injector.send([("ACTION", "add"), ("DEVPATH", "/devices/virtual/net/dummy0"), ("SUBSYSTEM", "net"), ("SEQNUM", "3")])
        usleep(300_000)
        watcher.stop()
        let ended = DispatchSemaphore(value: 0)
        Task { await consumer.value; ended.signal() }
        guard ended.wait(timeout: .now() + 5) == .success else { throw fail("the event sequence did not end after stop()") }
        agent.stop()
        for line in events.list.withCheckedLock({ $0 }) { print(line) }
        print("slots after add: \(slotsAfterAdd)")
        print("slots after remove: \(agent.currentSlots.count)")
        print("journal: " + journal.state.withCheckedLock { $0.list }.joined(separator: " "))
        if let slot = journal.state.withCheckedLock({ $0.firstSlot }) {
            printError(String(cFormat: "netlink add event to bench slot: %.2f ms", slot.timeIntervalSince(sent) * 1000))
        }
    }

    /// One line per USB device or USB serial port udev knows, with the programmer kind the agent gives it.
    private func enumerate() throws {
        let watcher = try DeviceWatcher()
        for device in watcher.enumerate() {
            let entry = DeviceCatalog.builtIn.entry(for: USBID(vendor: device.vendorID, product: device.productID), product: device.product)
            let kind = entry?.role.programmerKind?.rawValue ?? "-"
            print("\(device.syspath) \(String(cFormat: "%04x:%04x", device.vendorID, device.productID)) \(device.product ?? "-") \(device.devnode ?? "-") \(kind)")
        }
    }
}
