import Agent
import Foundation
import Recovery
import Rules
import TestSupport
import Testing

/// A finished job as `JournalReader` would read it.
private func job(_ id: String, bench: String?, host: String, programmer: String = "usbasp", port: String = "p1", rule: String? = "caterina",
                 result: String, milliseconds: Int? = nil, step: String? = nil, reason: String? = nil, at: UInt64 = 0) -> JobRecord {
    var record = JobRecord(job: id, programmer: programmer, port: port, result: result, message: "job \(id): \(result): …", part: "ATmega32U4", resumes: nil)
    record.bench = bench
    record.host = host
    record.rule = rule
    record.durationMilliseconds = milliseconds
    record.step = step
    record.reason = reason
    record.exitStatus = reason == nil ? nil : 3
    record.microseconds = at
    return record
}

@Suite struct WorkshopSummaryTests {
    @Test func benchesProgrammersRulesAndFailuresAreCountedApart() throws {
        let jobs = [
            job("a1", bench: "bench-1", host: "pc1", rule: "caterina", result: "restored", milliseconds: 1800),
            job("a2", bench: "bench-1", host: "pc1", rule: "caterina", result: "restored", milliseconds: 2000),
            job("a3", bench: "bench-1", host: "pc1", port: "p2", rule: "caterina", result: "restored", milliseconds: 5000),
            job("a4", bench: "bench-1", host: "pc1", rule: "uno", result: "healthy"),
            job("a5", bench: "bench-1", host: "pc1", port: "p2", rule: nil, result: "failed", step: "identify", reason: "no target answers", at: 5),
            job("a6", bench: "bench-1", host: "pc1", port: "p2", rule: nil, result: "failed", step: "identify", reason: "no target answers", at: 9),
            job("a7", bench: "bench-1", host: "pc1", rule: "uno", result: "failed", step: "verify-flash", reason: "flash differs at 0x7E00"),
            // No bench key: the host names the bench.
            job("b1", bench: nil, host: "pc2", rule: "caterina", result: "restored", milliseconds: 1000),
            job("b2", bench: nil, host: "pc2", rule: "caterina", result: "restored", milliseconds: 3000),
        ]
        let summary = WorkshopSummary(jobs: jobs)
        #expect(summary.benches.map(\.bench) == ["bench-1", "pc2"])
        let one = summary.benches[0]
        #expect(one.host == "pc1")
        #expect((one.counts.restored, one.counts.healthy, one.counts.failed) == (3, 1, 3))
        #expect(one.programmers.map { "\($0.programmer) \($0.port) \($0.counts.description)" }
                == ["usbasp p1 2 restored, 1 healthy, 1 failed", "usbasp p2 1 restored, 0 healthy, 2 failed"])
        #expect(one.rules.map(\.rule) == ["caterina", "uno"])
        #expect(one.rules[0].medianRestoreSeconds == 2.0, "median of 1.8, 2.0 and 5.0")
        #expect(one.rules[1].medianRestoreSeconds == nil, "nothing restored by uno")
        #expect(one.failures.map { "\($0.count) \($0.step) \($0.reason) \($0.lastJob)" }
                == ["2 identify no target answers a6", "1 verify-flash flash differs at 0x7E00 a7"])
        #expect(summary.benches[1].rules[0].medianRestoreSeconds == 2.0, "the mean of the middle two of an even count")

        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(summary)) as? [String: Any]
        let benches = try #require(json?["benches"] as? [[String: Any]])
        #expect(Set(benches[0].keys) == ["bench", "host", "restored", "healthy", "failed", "programmers", "rules", "failures"])
        #expect(benches[0]["restored"] as? Int == 3)
        let failure = try #require((benches[0]["failures"] as? [[String: Any]])?.first)
        #expect(failure["count"] as? Int == 2 && failure["exit_status"] as? Int == 3 && failure["last_job"] as? String == "a6")
    }

    @Test func entriesWithoutAReasonFieldGroupByTheirMessage() {
        var old = JobRecord(job: "x", programmer: "usbasp", port: "p", result: "failed",
                            message: "job x: failed: the target vanished (the chip's previous contents are saved in /b/1)", part: nil, resumes: nil)
        old.host = "pc"
        let summary = WorkshopSummary(jobs: [old])
        #expect(summary.benches.first?.failures.first?.reason == "the target vanished (the chip's previous contents are saved in /b/1)")
    }
}

@Suite struct JournalTimeTests {
    let now = JournalTime.now

    @Test func namedDaysAreLocalMidnights() throws {
        let today = try JournalTime.microseconds("today", now: now)
        #expect(today <= now && now - today < 86_400_000_000 + 3_600_000_000)
        #expect(JournalTime.localDescription(today).hasSuffix(" 00:00:00"))
        let yesterday = try JournalTime.microseconds("yesterday", now: now)
        #expect(JournalTime.localDescription(yesterday).hasSuffix(" 00:00:00") && yesterday < today)
        #expect(try JournalTime.microseconds("tomorrow", now: now) > now)
        #expect(try JournalTime.microseconds("now", now: now) == now)
    }

    @Test func datesTimesAndOffsetsReadBack() throws {
        let stamp = try JournalTime.microseconds("2026-03-04 05:06:07", now: now)
        #expect(JournalTime.localDescription(stamp) == "2026-03-04 05:06:07")
        #expect(try JournalTime.microseconds("2026-03-04T05:06:07", now: now) == stamp)
        #expect(JournalTime.localDescription(try JournalTime.microseconds("2026-03-04", now: now)) == "2026-03-04 00:00:00")
        #expect(JournalTime.localDescription(try JournalTime.microseconds("2026-03-04 05:06", now: now)) == "2026-03-04 05:06:00")
        #expect(JournalTime.localDescription(try JournalTime.microseconds("13:45", now: now)).hasSuffix(" 13:45:00"))
        #expect(try JournalTime.microseconds("-2h", now: now) == now - 7_200_000_000)
        #expect(try JournalTime.microseconds("-30min", now: now) == now - 1_800_000_000)
        #expect(try JournalTime.microseconds("+1d", now: now) == now + 86_400_000_000)
        #expect(try JournalTime.microseconds("@1700000000", now: now) == 1_700_000_000_000_000)
    }

    @Test func nonsenseIsRefusedByName() {
        for text in ["", "soon", "2026-13-01", "2026-02-30x", "25:00", "-2 parsecs", "12:61", "2026-1-1"] {
            #expect(throws: JournalTime.ParseError.self, "\(text)") { try JournalTime.microseconds(text, now: now) }
        }
    }
}

@Suite struct LiveBoardTests {
    private func entry(_ fields: [String: String], at seconds: UInt64 = 1) -> ReadEntry {
        ReadEntry(fields: fields.merging(["_HOSTNAME": "pc1", "BOOTMEDIC_BENCH": "bench-1", "BOOTMEDIC_PROGRAMMER": "usbasp"]) { own, _ in own },
                  microseconds: seconds * 1_000_000)
    }

    @Test func aSlotFollowsItsJobFromPlugToResult() {
        var board = LiveBoard()
        #expect(board.lines(width: 200) == ["no programmer on any bench yet"])
        board.apply(.programmerAdded, entry(["BOOTMEDIC_PORT": "usb-1"]))
        board.apply(.programmerAdded, entry(["BOOTMEDIC_PORT": "usb-2", "BOOTMEDIC_BENCH": "bench-2", "_HOSTNAME": "pc2"]))
        #expect(board.lines(width: 200)[1].contains("waiting for a board"))
        board.apply(.targetFound, entry(["BOOTMEDIC_PORT": "usb-1"]))
        board.apply(.jobStarted, entry(["BOOTMEDIC_PORT": "usb-1", "BOOTMEDIC_JOB": "j1"]))
        board.apply(.stepFinished, entry(["BOOTMEDIC_PORT": "usb-1", "BOOTMEDIC_JOB": "j1", "BOOTMEDIC_STEP": "write-flash",
                                          "BOOTMEDIC_PART": "ATmega32U4", "BOOTMEDIC_RULE": "caterina"]))
        let running = board.lines(width: 200)
        #expect(running[0] == "bench-1 (pc1)")
        #expect(running[1].contains("ATmega32U4") && running[1].contains("caterina") && running[1].contains("[#######-----] write-flash"), "\(running[1])")
        #expect(running[2] == "bench-2 (pc2)")
        let changed = board.apply(.notice, entry(["BOOTMEDIC_PORT": "usb-1"]))
        #expect(!changed, "nothing a slot shows changed")
        board.apply(.restored, entry(["BOOTMEDIC_PORT": "usb-1", "BOOTMEDIC_DURATION_MS": "1920"]))
        #expect(board.lines(width: 200)[1].hasSuffix("idle                           restored in 1.92 s"), "\(board.lines(width: 200)[1])")
        #expect(board.lines(width: 40).allSatisfy { $0.count <= 40 })
        board.apply(.programmerRemoved, entry(["BOOTMEDIC_PORT": "usb-2", "BOOTMEDIC_BENCH": "bench-2", "_HOSTNAME": "pc2"]))
        #expect(board.slots.map(\.port) == ["usb-1"])
    }
}

@Suite struct BenchNameTests {
    @Test func theRulesBenchNameStampsEveryEntry() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("rules.toml").path
        try "[defaults]\nbench = \"bench-3\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        let set = try #require(RulesFile.load(path: path, firmwareDirectory: nil).ruleSet)
        #expect(set.bench == "bench-3")
        let recording = RecordingJournal()
        let journal = StampedJournal(["BOOTMEDIC_BENCH": "bench-3"], onto: recording)
        journal.write(JournalEntry(.agentStarted, "started"))
        journal.write(JournalEntry(.notice, "own", fields: ["BOOTMEDIC_BENCH": "other", "BOOTMEDIC_JOB": "j"]))
        #expect(recording.entries.map { $0.fields["BOOTMEDIC_BENCH"] } == ["bench-3", "other"])
        #expect(recording.entries[1].fields["BOOTMEDIC_JOB"] == "j")

        for bad in ["bench 3", "bench/3", String(repeating: "b", count: 65)] {
            try "[defaults]\nbench = \"\(bad)\"\n".write(toFile: path, atomically: true, encoding: .utf8)
            let loaded = RulesFile.load(path: path, firmwareDirectory: nil)
            #expect(loaded.errors.contains { $0.message.hasPrefix("bench must be 1 to 64 letters") && $0.line == 2 }, "\(bad): \(loaded.errors)")
        }
    }
}
