import ArgumentParser
import DeviceTrace
import FoundationEssentials
import Programmers
import Recovery
import Rules

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Run a restore against a recorded trace instead of a programmer.",
        discussion: """
        The trace is what `probe`, `restore`, `rehearse` or `agent` wrote with --trace: every USB transfer \
        or everything that crossed a serial line, with its answer. The real driver and the whole restore run again; each transfer must be the next \
        one recorded, and gets the recorded answer, so a failure seen on a bench happens here the same way \
        and a changed driver shows where it leaves the recording (the step and the trace line). \
        A USB device's kind comes from the device catalog (with the rules file's [[programmer]] entries), a \
        serial line's from the trace. \
        Same output and exit status as `restore`.
        """)

    @Argument(help: "The trace file.")
    var trace: String

    @Option(help: "Which session of the trace (an agent's trace holds one per programmer opened).")
    var session: Int = 1

    @OptionGroup var options: RestoreOptions

    func run() throws {
        let set = try options.loadRules()
        let replay: TraceReplay
        do { replay = try TraceReplay.load(path: trace, session: session) } catch { throw fail(error.description) }
        let connection: ProgrammerConnection
        do {
            switch replay {
            case let .usb(device):
                let d = device.description
                guard let kind = set.deviceCatalog.entry(for: USBID(vendor: d.vendorID, product: d.productID), product: d.product)?.role.programmerKind else {
                    throw fail("the trace's device \(d) is no programmer the device catalog knows; declare it with [[programmer]] in the rules file", code: 4)
                }
                connection = try ProgrammerRegistry.driver(for: kind).open(usb: device, time: device.clock)
            case let .serial(link):
                guard let kind = ProgrammerKind(rawValue: link.label), kind.isSerial else {
                    throw fail("the trace's serial line carries '\(link.label)', which is no serial programmer kind", code: 4)
                }
                connection = try ProgrammerRegistry.driver(for: kind).open(serialLink: link, time: link.clock)
            }
        } catch let error as ProgrammerOpenError { throw fail(error.description, code: 4) }
        let backups = BackupStore(directory: options.backupDir ?? temporaryDirectory() + "bootmedic-replay-backups")
        let result = RecoveryJob(target: connection.restoreTarget, rules: set, ruleName: options.rule, backups: backups,
                                 sink: ConsoleSink(quiet: options.json)).run()
        if replay.remainingTransfers > 0 && result.failure == nil {
            printError("bootmedic: note: the trace holds \(replay.remainingTransfers) more transfers than the restore made")
        }
        try finish(result, json: options.json, simulation: .init(seconds: replay.clock.seconds, usbTransfers: nil))
    }
}
