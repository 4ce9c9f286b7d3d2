/// What a workshop's benches did over a window of the journal: per bench, per programmer and per rule, the
/// restored, healthy and failed jobs, the failures grouped by reason, and the median restore time per rule.
public struct WorkshopSummary: Encodable, Sendable, Equatable {
    public let benches: [BenchSummary]

    /// Benches in name order, each with its host; a bench name seen on two hosts is two benches.
    public init(jobs: [JobRecord]) {
        let byBench = Dictionary(grouping: jobs) { BenchKey(bench: $0.benchName, host: $0.host ?? "") }
        benches = byBench.keys.sorted().map { BenchSummary(bench: $0.bench, host: $0.host, jobs: byBench[$0]!) }
    }
}

private struct BenchKey: Hashable, Comparable {
    let bench: String
    let host: String
    static func < (a: Self, b: Self) -> Bool { (a.bench, a.host) < (b.bench, b.host) }
}

/// Restored, healthy and failed jobs of one group.
public struct JobCounts: Sendable, Equatable {
    public var restored = 0, healthy = 0, failed = 0

    init(restored: Int, healthy: Int, failed: Int) {
        (self.restored, self.healthy, self.failed) = (restored, healthy, failed)
    }

    init(_ jobs: [JobRecord]) {
        for job in jobs {
            switch job.result {
            case "restored": restored += 1
            case "healthy": healthy += 1
            case "failed": failed += 1
            default: break
            }
        }
    }

    var values: (Int, Int, Int) { (restored, healthy, failed) }

    /// "3 restored, 1 healthy, 0 failed".
    public var description: String { "\(restored) restored, \(healthy) healthy, \(failed) failed" }
}

public struct BenchSummary: Encodable, Sendable, Equatable {
    public let bench: String
    /// The machine's `_HOSTNAME`; empty if the entries lack it.
    public let host: String
    public let restored: Int, healthy: Int, failed: Int
    public let programmers: [ProgrammerSummary]
    public let rules: [RuleSummary]
    /// Most frequent first.
    public let failures: [FailureGroup]

    init(bench: String, host: String, jobs: [JobRecord]) {
        self.bench = bench
        self.host = host
        (restored, healthy, failed) = JobCounts(jobs).values
        let byProgrammer = Dictionary(grouping: jobs) { ProgrammerSummary.Key(programmer: $0.programmer, port: $0.port) }
        programmers = byProgrammer.keys.sorted().map { ProgrammerSummary(programmer: $0.programmer, port: $0.port, jobs: byProgrammer[$0]!) }
        let byRule = Dictionary(grouping: jobs.filter { $0.rule != nil }) { $0.rule! }
        rules = byRule.keys.sorted().map { RuleSummary(rule: $0, jobs: byRule[$0]!) }
        let failed = jobs.filter { $0.result == "failed" }
        let byReason = Dictionary(grouping: failed) { FailureGroup.Key(step: $0.step ?? "?", reason: $0.failureReason, exitStatus: $0.exitStatus) }
        failures = byReason.map { FailureGroup(key: $0.key, jobs: $0.value) }
            .sorted { ($0.count, $1.step, $1.reason) > ($1.count, $0.step, $0.reason) }
    }

    public var counts: JobCounts { JobCounts(restored: restored, healthy: healthy, failed: failed) }
}

public struct ProgrammerSummary: Encodable, Sendable, Equatable {
    public let programmer: String
    public let port: String
    public let restored: Int, healthy: Int, failed: Int

    init(programmer: String, port: String, jobs: [JobRecord]) {
        self.programmer = programmer
        self.port = port
        (restored, healthy, failed) = JobCounts(jobs).values
    }

    public var counts: JobCounts { JobCounts(restored: restored, healthy: healthy, failed: failed) }

    struct Key: Hashable, Comparable {
        let programmer: String
        let port: String
        static func < (a: Self, b: Self) -> Bool { (a.programmer, a.port) < (b.programmer, b.port) }
    }
}

public struct RuleSummary: Encodable, Sendable, Equatable {
    public let rule: String
    public let restored: Int, healthy: Int, failed: Int
    /// The median duration of the rule's restored jobs, nil if none was restored.
    public let medianRestoreSeconds: Double?

    init(rule: String, jobs: [JobRecord]) {
        self.rule = rule
        (restored, healthy, failed) = JobCounts(jobs).values
        let seconds = jobs.filter { $0.result == "restored" }.compactMap(\.durationMilliseconds).sorted().map { Double($0) / 1000 }
        medianRestoreSeconds = seconds.isEmpty ? nil
            : seconds.count % 2 == 1 ? seconds[seconds.count / 2] : (seconds[seconds.count / 2 - 1] + seconds[seconds.count / 2]) / 2
    }

    public var counts: JobCounts { JobCounts(restored: restored, healthy: healthy, failed: failed) }

    enum CodingKeys: String, CodingKey { case rule, restored, healthy, failed, medianRestoreSeconds = "median_restore_seconds" }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(rule, forKey: .rule)
        try container.encode(restored, forKey: .restored)
        try container.encode(healthy, forKey: .healthy)
        try container.encode(failed, forKey: .failed)
        // null, not absent, where nothing was restored: every rule object has the same keys.
        try container.encode(medianRestoreSeconds, forKey: .medianRestoreSeconds)
    }
}

/// Failed jobs that stopped at the same step for the same reason.
public struct FailureGroup: Encodable, Sendable, Equatable {
    public let step: String
    public let reason: String
    public let exitStatus: Int?
    public let count: Int
    /// The newest of them.
    public let lastJob: String

    struct Key: Hashable {
        let step: String
        let reason: String
        let exitStatus: Int?
    }

    init(key: Key, jobs: [JobRecord]) {
        step = key.step
        reason = key.reason
        exitStatus = key.exitStatus
        count = jobs.count
        lastJob = jobs.max { $0.microseconds < $1.microseconds }?.job ?? "?"
    }

    enum CodingKeys: String, CodingKey { case step, reason, count, exitStatus = "exit_status", lastJob = "last_job" }
}

extension JobRecord {
    /// The reason a failed job gives: BOOTMEDIC_REASON, or for entries older than that field, the message
    /// without its job prefix.
    var failureReason: String {
        if let reason { return reason }
        var text = Substring(message)
        if text.hasPrefix("job "), let colon = text.firstIndex(of: ":") { text = text[text.index(after: colon)...].drop { $0 == " " } }
        if text.hasPrefix("failed: ") { text = text.dropFirst("failed: ".count) }
        return String(text)
    }
}
