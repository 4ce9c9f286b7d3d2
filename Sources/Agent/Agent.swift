import Foundation
import Recovery
import Rules

/// The bench service: one ``BenchSlot`` per plugged programmer, all writing to one journal.
public final class Agent: @unchecked Sendable {
    public let rules: RuleSet
    public let journal: JournalWriter
    public let backups: BackupStore?
    public let pollInterval: Double
    private let lock = NSLock()
    private var slots: [String: BenchSlot] = [:]
    private var stopping = false
    /// Whether a USB device with these ids is on the bus now (for `expect_usb`).
    public var usbPresence: @Sendable (USBID) -> Bool = { _ in false }
    /// How long a slot waits for a restored bootloader to enumerate.
    public var expectUSBTimeout: Double = 10

    public init(rules: RuleSet, journal: JournalWriter, backups: BackupStore?, pollInterval: Double) {
        self.rules = rules
        self.journal = journal
        self.backups = backups
        self.pollInterval = pollInterval
    }

    /// Journals the start and tells systemd the service is ready.
    public func start() {
        journal.write(JournalEntry(.agentStarted, "bootmedic agent started with \(rules.rules.count) rules from \(rules.path)"))
        ServiceNotifier.notify("READY=1\nSTATUS=\(status)")
    }

    /// A programmer arrived: give it a slot (a second report of the same device is ignored).
    public func add(_ programmer: BenchProgrammer) {
        let slot: BenchSlot? = lock.withLock {
            guard !stopping, slots[programmer.id] == nil else { return nil }
            let slot = BenchSlot(programmer: programmer, rules: rules, journal: journal, backups: backups, pollInterval: pollInterval,
                                 jobNumber: { UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased() })
            slot.usbPresence = usbPresence
            slot.expectUSBTimeout = expectUSBTimeout
            slots[programmer.id] = slot
            return slot
        }
        guard let slot else { return }
        var fields = ["BOOTMEDIC_PROGRAMMER": programmer.kind.rawValue]
        if let serial = programmer.serial { fields["BOOTMEDIC_PROGRAMMER_SERIAL"] = serial }
        if let port = programmer.port { fields["BOOTMEDIC_PORT"] = port }
        journal.write(JournalEntry(.programmerAdded, "\(programmer.kind.description) plugged in at \(programmer.port ?? programmer.id)", fields: fields))
        slot.start()
        notifyStatus()
    }

    /// A programmer left: its slot stops at a safe point.
    public func remove(id: String) {
        guard let slot = lock.withLock({ slots.removeValue(forKey: id) }) else { return }
        slot.stop()
        var fields = ["BOOTMEDIC_PROGRAMMER": slot.programmer.kind.rawValue]
        if let port = slot.programmer.port { fields["BOOTMEDIC_PORT"] = port }
        journal.write(JournalEntry(.programmerRemoved, "\(slot.programmer.kind.description) unplugged from \(slot.programmer.port ?? id)", fields: fields))
        notifyStatus()
    }

    /// No new jobs; every slot stops at its next safe point.
    public func stop() {
        ServiceNotifier.notify("STOPPING=1")
        journal.write(JournalEntry(.agentStopping, "bootmedic agent stopping"))
        let all = lock.withLock { () -> [BenchSlot] in
            stopping = true
            defer { slots.removeAll() }
            return Array(slots.values)
        }
        all.forEach { $0.stop() }
    }

    /// The slots by programmer id.
    public var currentSlots: [String: BenchSlot] { lock.withLock { slots } }

    /// One line for STATUS=: what every slot is doing.
    public var status: String {
        let all = currentSlots.sorted { $0.key < $1.key }
        guard !all.isEmpty else { return "no programmer plugged in" }
        return all.map { "\($0.value.programmer.port ?? $0.key): \($0.value.state)" }.joined(separator: "; ")
    }

    public func notifyStatus() { ServiceNotifier.notify("STATUS=\(status)") }
}
