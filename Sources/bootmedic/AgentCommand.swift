import Agent
import ArgumentParser
import Dispatch
import FirmwareImage
import FoundationEssentials
import Glibc
import Recovery
import Rules
import VirtualBench

struct AgentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run the bench service: notice programmers, restore boards, journal every step.",
        discussion: """
        Follows udev for programmers (those plugged in before it started count too), gives each a slot that \
        looks for a board at a calm rate, restores it by the rules, and waits until it is removed. Entries \
        go to the systemd journal with BOOTMEDIC_* fields (and to standard error when it is a terminal or \
        no journald runs). Speaks sd_notify (READY, STATUS, WATCHDOG, STOPPING). SIGTERM/SIGINT: no new \
        jobs; a running job finishes its current step and stops there. With --virtual-bench, simulated \
        programmers and boards come and go as a scenario file says, and the agent exits at its end.
        """)

    @Option(help: "The rules file.")
    var config: String = "/etc/bootmedic/rules.toml"

    @Option(help: "Resolve relative firmware paths here instead of the rules file's firmware_dir.")
    var firmwareDir: String?

    @Option(help: "Save backups here instead of the rules file's backup_dir.")
    var backupDir: String?

    @Option(help: ArgumentHelp("Keep the records of restores in progress in DIR/jobs, so that one cut short (power lost, the service killed) is finished by the next job that finds the chip. Default: $STATE_DIRECTORY (systemd's StateDirectory=) or /var/lib/bootmedic; with --virtual-bench, a temporary folder.", valueName: "dir"))
    var stateDir: String?

    @Option(help: "Seconds between looks for a board on each programmer.")
    var pollInterval: Double = 0.25

    @OptionGroup var trace: TraceOption

    @Option(help: "Play this virtual-bench scenario instead of watching udev.")
    var virtualBench: String?

    @Option(help: ArgumentHelp("With --virtual-bench: write, in milliseconds, each USB programmer's plug event to the agent's first command to it (plugToFirstCommand) and each AVR board's arrival on a cable to the first erase or write its restore sent (attachToFirstWrite), as a JSON object, to this file.", visibility: .hidden))
    var latencyReport: String?

    func validate() throws {
        if virtualBench != nil, trace.path != nil {
            throw ValidationError("--trace records real USB programmers; a virtual bench's are simulated (rehearse --trace records one)")
        }
    }

    func run() throws {
        let loaded = RulesFile.load(path: config, firmwareDirectory: firmwareDir)
        guard let rules = loaded.ruleSet, loaded.errors.isEmpty else {
            loaded.errors.forEach { printError($0.description) }
            throw fail("\(config) has errors; see `bootmedic rules check \(config)`", code: 7)
        }
        let journaldRunning = FileManager.default.fileExists(atPath: "/run/systemd/journal/socket")
        var writers: [JournalWriter] = []
        var journalled = false
        if journaldRunning {
            do {
                writers.append(try SystemJournal())
                journalled = true
            } catch { printError("bootmedic: warning: \(error); entries go to standard error only") }
        }
        if !journalled || isatty(STDERR_FILENO) == 1 { writers.append(ConsoleJournal()) }
        let fanOut = JournalFanOut(writers)
        let journal: JournalWriter = rules.bench.map { StampedJournal(["BOOTMEDIC_BENCH": $0], onto: fanOut) } ?? fanOut

        if let path = virtualBench {
            let scenario: VirtualBenchScenario
            do { scenario = try VirtualBenchScenario.load(path: path) } catch { throw fail(error.description) }
            let agent = Agent(rules: rules, journal: journal, backups: BackupStore(directory: backupDir ?? temporaryDirectory() + "bootmedic-virtual-bench-backups"),
                              records: RestoreRecords(directory: (stateDir ?? temporaryDirectory() + "bootmedic-virtual-bench") + "/jobs"),
                              pollInterval: min(pollInterval, scenario.pollInterval))
            let bench = VirtualBench(rules: rules)
            agent.usbPresence = bench.usbPresence
            agent.bootloaderOnBus = bench.bootloaderOnBus
            agent.expectUSBTimeout = 2
            agent.start()
            do { try bench.play(scenario, on: agent) } catch {
                agent.stop()
                throw fail("\(error)")
            }
            agent.stop()
            if let latencyReport {
                let milliseconds = { (seconds: [Double]) in seconds.map { ($0 * 10_000).rounded() / 10 } }
                let report = ["plugToFirstCommand": milliseconds(bench.eventToFirstCommand), "attachToFirstWrite": milliseconds(bench.attachToFirstWrite)]
                let encoder = JSONEncoder()
                encoder.outputFormatting = .sortedKeys
                do {
                    try encoder.encode(report).write(to: URL(fileURLWithPath: latencyReport))
                } catch { throw fail("\(latencyReport): \(InputFile.reason(error))") }
            }
            return
        }

        // Caught from here on: a stop requested while the agent starts still stops it in order.
        let signals = TerminationSignals()
        let state = stateDir ?? ProcessInfo.processInfo.environment["STATE_DIRECTORY"].flatMap { $0.split(separator: ":").first.map(String.init) } ?? "/var/lib/bootmedic"
        let agent = Agent(rules: rules, journal: journal, backups: BackupStore(directory: backupDir ?? rules.backupDirectory),
                          records: RestoreRecords(directory: state + "/jobs"), pollInterval: pollInterval, trace: try trace.recorder())
        let watcher: DeviceWatcher
        do { watcher = try DeviceWatcher() } catch { throw fail("\(error)", code: 4) }
        agent.start()
        for device in watcher.enumerate() { agent.handle(.added(device)) }
        watcher.start(agent.handle)
        // The main loop: watchdog pings and status while the slots work.
        let interval = ServiceNotifier.watchdogInterval.map { $0 / 2 } ?? 5
        while !signals.wait(until: .now() + interval) {
            ServiceNotifier.notify("WATCHDOG=1\nSTATUS=\(agent.status)")
        }
        watcher.stop()
        agent.stop()
    }
}
