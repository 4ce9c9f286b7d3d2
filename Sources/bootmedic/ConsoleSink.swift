import BenchModel
import FoundationEssentials
import Glibc
import Recovery
import Transport

/// Renders recovery events for a person: a progress bar on a terminal, one line per step otherwise.
final class ConsoleSink: RecoveryEventSink {
    private let interactive: Bool
    private let quiet: Bool
    private var lastDraw = Date.distantPast

    /// - Parameter quiet: print nothing (for `--json`).
    init(quiet: Bool) {
        self.quiet = quiet
        interactive = !quiet && isatty(STDERR_FILENO) == 1
    }

    func record(_ event: RecoveryEvent) {
        guard !quiet else { return }
        switch event {
        case let .started(identity):
            print("\(identity.name)" + (identity.port.map { " at \($0)" } ?? "") + (identity.firmware.map { " (\($0))" } ?? ""))
        case let .progress(step, done, total) where interactive && total > 0:
            guard Date().timeIntervalSince(lastDraw) > 0.05 || done == total else { return }
            lastDraw = Date()
            let width = 30
            let filled = min(width, done * width / total)
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            OutputFile.writeToStandardError("\r  \(step.rawValue.padding(14)) [\(bar)] \(done * 100 / total)%")
        case let .stepFinished(report):
            if interactive { OutputFile.writeToStandardError("\r\u{1B}[K") }
            let bytes = report.bytes > 0 ? "\(report.bytes) B" : ""
            print("  \(report.step.rawValue.padding(14)) \(bytes.padding(8)) \(String(cFormat: "%6.2f s", report.seconds))  \(report.detail)")
        case let .notice(_, severity, text):
            if interactive { OutputFile.writeToStandardError("\r\u{1B}[K") }
            print("  \(severity.rawValue): \(text)")
        case let .resumed(job, step, backup):
            print("  finishing job \(job), which stopped at \(step.rawValue) on this chip" + (backup.map { "; its backup \($0) stands" } ?? ""))
        default:
            return
        }
        // Each line as it happens, also into a file or a pipe: a log shows how far a restore got.
        fflush(nil)
    }
}
