import BenchModel
import Recovery

/// Every bench's slots as the journal tells them, entry by entry: what `status --follow` draws.
public struct LiveBoard: Sendable, Equatable {
    /// One programmer's slot on one bench.
    public struct Slot: Sendable, Equatable {
        public var bench: String
        public var host: String
        public var programmer: String
        public var port: String
        public var board: String?
        public var rule: String?
        public var job: String?
        /// The last step the running job finished; nil when no job runs.
        public var step: RecoveryStep?
        public var lastResult: String?
    }

    public private(set) var slots: [Slot] = []

    public init() {}

    /// Takes one entry in; true when a slot changed.
    @discardableResult
    public mutating func apply(_ kind: JournalMessage, _ entry: ReadEntry) -> Bool {
        guard let port = entry["BOOTMEDIC_PORT"] ?? entry["BOOTMEDIC_PROGRAMMER"] else { return false }
        let host = entry["_HOSTNAME"] ?? ""
        let bench = entry["BOOTMEDIC_BENCH"] ?? (host.isEmpty ? "this bench" : host)
        if kind == .programmerRemoved {
            let before = slots.count
            slots.removeAll { $0.bench == bench && $0.host == host && $0.port == port }
            return slots.count != before
        }
        let index = slots.firstIndex { $0.bench == bench && $0.host == host && $0.port == port } ?? {
            slots.append(Slot(bench: bench, host: host, programmer: entry["BOOTMEDIC_PROGRAMMER"] ?? "?", port: port))
            slots.sort { ($0.bench, $0.host, $0.port) < ($1.bench, $1.host, $1.port) }
            return slots.firstIndex { $0.bench == bench && $0.host == host && $0.port == port }!
        }()
        var slot = slots[index]
        if let programmer = entry["BOOTMEDIC_PROGRAMMER"] { slot.programmer = programmer }
        if let part = entry["BOOTMEDIC_PART"] { slot.board = part }
        if let rule = entry["BOOTMEDIC_RULE"] { slot.rule = rule }
        switch kind {
        case .targetFound:
            slot.board = slot.board ?? "a board"
        case .targetRemoved:
            slot.board = nil
            slot.rule = nil
        case .jobStarted, .resumed:
            slot.job = entry["BOOTMEDIC_JOB"]
            slot.step = nil
        case .stepFinished:
            slot.job = entry["BOOTMEDIC_JOB"] ?? slot.job
            slot.step = entry["BOOTMEDIC_STEP"].flatMap(RecoveryStep.init(rawValue:))
        case .restored, .healthy, .failed:
            slot.job = nil
            slot.step = nil
            slot.lastResult = Self.result(kind, entry)
        default:
            break
        }
        guard slot != slots[index] else { return false }
        slots[index] = slot
        return true
    }

    /// "restored in 1.92 s", "healthy", "failed at identify".
    private static func result(_ kind: JournalMessage, _ entry: ReadEntry) -> String {
        switch kind {
        case .restored:
            return "restored" + (entry["BOOTMEDIC_DURATION_MS"].flatMap { Double($0) }.map { String(cFormat: " in %.2f s", $0 / 1000) } ?? "")
        case .healthy:
            return "healthy"
        default:
            return "failed" + (entry["BOOTMEDIC_STEP"].map { " at \($0)" } ?? "")
        }
    }

    /// The board as lines at most `width` columns wide: per bench a heading, then one line per slot with a
    /// progress bar over the restore's steps.
    public func lines(width: Int) -> [String] {
        guard !slots.isEmpty else { return ["no programmer on any bench yet"] }
        var lines: [String] = []
        var heading = ""
        let steps = RecoveryStep.allCases
        for slot in slots {
            let benchHeading = slot.host.isEmpty || slot.host == slot.bench ? slot.bench : "\(slot.bench) (\(slot.host))"
            if benchHeading != heading {
                heading = benchHeading
                lines.append(benchHeading)
            }
            let progress: String
            if slot.job != nil {
                let done = slot.step.flatMap { steps.firstIndex(of: $0) }.map { $0 + 1 } ?? 0
                let filled = done * 12 / steps.count
                progress = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: 12 - filled) + "] "
                    + (slot.step.map { $0.rawValue } ?? "starting")
            } else {
                progress = slot.board == nil ? "waiting for a board" : "idle"
            }
            let line = "  " + [pad(slot.programmer, 10), pad(slot.port, 22), pad(slot.board ?? "-", 12), pad(slot.rule ?? "-", 24),
                               pad(progress, 30), slot.lastResult ?? "-"].joined(separator: " ")
            lines.append(String(line.prefix(width)))
        }
        return lines
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? String(text.prefix(width)) : text + String(repeating: " ", count: width - text.count)
    }

    /// One line for one entry, for a log that is not a terminal: time, bench, programmer, port, message.
    public static func line(_ entry: ReadEntry) -> String {
        let host = entry["_HOSTNAME"] ?? ""
        let bench = entry["BOOTMEDIC_BENCH"] ?? (host.isEmpty ? "this bench" : host)
        return [JournalTime.localDescription(entry.microseconds), bench, entry["BOOTMEDIC_PROGRAMMER"] ?? "-", entry["BOOTMEDIC_PORT"] ?? "-",
                entry["MESSAGE"] ?? ""].joined(separator: " ")
    }
}
