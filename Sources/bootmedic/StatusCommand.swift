import Agent
import ArgumentParser
import FoundationEssentials
import Glibc
import Recovery
import Transport

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Summarise the benches' jobs from the journal: per bench, programmer and rule; failures grouped by reason; restores left part-way.",
        discussion: """
        Reads this machine's journal, a folder of journal files (--directory, e.g. a workshop collector's \
        /var/log/journal/remote) or journal files (--file), over a window of time (--since, --until; \
        default: today). Benches are told apart by BOOTMEDIC_BENCH ([defaults] bench in their rules), else \
        by host name. --follow shows every bench's slots live: redrawn in place on a terminal, one line per \
        event otherwise.
        """)

    @Option(help: ArgumentHelp("Read the journal files in this folder (and below it) instead of this machine's journal.", valueName: "dir"))
    var directory: String?

    @Option(help: ArgumentHelp("Read this journal file instead of this machine's journal; repeat for more.", valueName: "file"))
    var file: [String] = []

    @Option(help: ArgumentHelp("Entries from this time on: now, today, yesterday, YYYY-MM-DD, 'YYYY-MM-DD HH:MM[:SS]', HH:MM, -2h, -30min, -1d, @SECONDS.", valueName: "time"))
    var since = "today"

    @Option(help: ArgumentHelp("Entries before this time (same forms as --since). Default: no end.", valueName: "time"))
    var until: String?

    @Option(help: "Only the last N jobs of the window.")
    var limit: Int?

    @Flag(help: "Show every bench's slots as they work, until SIGINT or SIGTERM.")
    var follow = false

    @Option(help: ArgumentHelp("The service's state folder, whose jobs/ holds the records of restores in progress (this machine's journal only).", valueName: "dir"))
    var stateDir = "/var/lib/bootmedic"

    @OptionGroup var output: OutputOptions

    func validate() throws {
        if directory != nil, !file.isEmpty { throw ValidationError("--directory and --file name two journals; give one") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if follow, output.json { throw ValidationError("--follow draws the benches live; --json prints one summary") }
        if follow, limit != nil { throw ValidationError("--limit counts jobs for the summary; --follow shows every entry") }
    }

    private var source: JournalSource {
        if let directory { return .directory(directory) }
        return file.isEmpty ? .local : .files(file)
    }

    func run() throws {
        let now = JournalTime.now
        let window: JournalWindow
        do {
            window = JournalWindow(since: try JournalTime.microseconds(since, now: now), until: try until.map { try JournalTime.microseconds($0, now: now) })
        } catch { throw fail("\(error)") }
        if let start = window.since, let end = window.until, end <= start { throw fail("--until (\(until!)) is not after --since (\(since))") }
        let reader: JournalReader
        do { reader = try JournalReader(source) } catch { throw fail(error.description) }
        if follow { return followBenches(reader, window: window) }

        let jobs = reader.jobs(in: window, limit: limit)
        let summary = WorkshopSummary(jobs: jobs)
        // Restore records live on this machine: shown with its own journal only.
        let (pending, unreadable) = source == .local ? RestoreRecords(directory: stateDir + "/jobs").all() : ([], [])
        let resumed = jobs.compactMap { job in job.resumes.map { Resumption(job: job.job, resumes: $0, result: job.result) } }
        if output.json {
            try printJSON(Report(benches: summary.benches, interrupted: pending, resumed: resumed,
                                 since: window.since.map(JournalTime.localDescription), until: window.until.map(JournalTime.localDescription)))
            for problem in unreadable { printError("bootmedic: warning: \(problem)") }
            return
        }
        let span = "since \(window.since.map(JournalTime.localDescription) ?? "the start")" + (window.until.map { " until \(JournalTime.localDescription($0))" } ?? "")
        if jobs.isEmpty { print("no bootmedic jobs in the journal \(span)") }
        for bench in summary.benches {
            print("\(bench.bench)\(bench.host.isEmpty || bench.host == bench.bench ? "" : " (host \(bench.host))"): \(bench.counts.description), \(span)")
            for programmer in bench.programmers {
                print("  \(programmer.programmer) at \(programmer.port): \(programmer.counts.description)")
            }
            for rule in bench.rules {
                print("  rule \(rule.rule): \(rule.counts.description)" + (rule.medianRestoreSeconds.map { String(cFormat: "; median restore %.2f s", $0) } ?? ""))
            }
            for failure in bench.failures {
                print("  \(failure.count)× failed at \(failure.step)" + (failure.exitStatus.map { " (exit \($0))" } ?? "") + ": \(failure.reason) (last: job \(failure.lastJob))")
            }
        }
        for resumption in resumed {
            print("job \(resumption.job) finished the interrupted job \(resumption.resumes): \(resumption.result)")
        }
        for record in pending {
            print("interrupted: job \(record.job) left \(record.part) on \(record.programmerDescription) at \(record.port ?? "?") at \(record.step.rawValue)"
                  + (record.failure.map { " (\($0))" } ?? "") + "; finished when that chip is found again"
                  + (record.backup.map { "; backup \($0)" } ?? ""))
        }
        for problem in unreadable { printError("bootmedic: warning: \(problem)") }
    }

    private struct Resumption: Encodable { let job: String; let resumes: String; let result: String }
    private struct Report: Encodable {
        let benches: [BenchSummary]
        let interrupted: [RestoreRecord]
        let resumed: [Resumption]
        let since: String?
        let until: String?
    }

    /// `--follow`: the live board on a terminal, redrawn in place; else one line per entry.
    private func followBenches(_ reader: JournalReader, window: JournalWindow) {
        let signals = TerminationSignals()
        var stopped = false
        let keepGoing = {
            if !stopped, signals.wait(until: .now()) { stopped = true }
            return !stopped
        }
        guard isatty(STDOUT_FILENO) == 1 else {
            reader.follow(from: window, keepGoing: keepGoing) { _, entry in
                print(LiveBoard.line(entry).escapedForDisplay)
                fflush(nil)
            }
            return
        }
        var board = LiveBoard()
        var lastDraw: UInt64 = 0
        var dirty = true
        // The alternate screen, as top and watch use: the shell's screen comes back on exit.
        OutputFile.writeToStandardOutput("\u{1B}[?1049h\u{1B}[?25l")
        defer { OutputFile.writeToStandardOutput("\u{1B}[?25h\u{1B}[?1049l") }
        reader.follow(from: window, keepGoing: keepGoing) { kind, entry in
            if board.apply(kind, entry) { dirty = true }
            // At most ten redraws a second, however fast entries come (a day's backlog at start).
            let now = JournalTime.now
            if dirty, now - lastDraw >= 100_000 {
                draw(board)
                lastDraw = now
                dirty = false
            }
        } idle: {
            if dirty { draw(board); dirty = false }
        }
    }

    private func draw(_ board: LiveBoard) {
        var size = winsize()
        let width = ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 ? Int(size.ws_col) : 120
        let title = "bootmedic status --follow  \(JournalTime.localDescription(JournalTime.now))  (Ctrl-C quits)"
        let lines = [String(title.prefix(width)), ""] + board.lines(width: width).map(\.escapedForDisplay)
        OutputFile.writeToStandardOutput("\u{1B}[H" + lines.map { $0 + "\u{1B}[K" }.joined(separator: "\r\n") + "\u{1B}[J")
    }
}
