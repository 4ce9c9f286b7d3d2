import ArgumentParser
import BenchModel
import FoundationEssentials
import Parts
import Rules

struct RulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rules", abstract: "Work with rules files.", subcommands: [Check.self, Import.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Prove a rules file before a bench uses it.",
            discussion: "Prints every problem as FILE:LINE:COLUMN: severity: message. Exits 1 if any is an error.")

        @Argument(help: "The rules file (TOML).")
        var file: String

        @Option(help: "Resolve relative firmware paths here instead of the file's firmware_dir.")
        var firmwareDir: String?

        @OptionGroup var output: OutputOptions

        func run() throws {
            let (set, problems) = RuleChecker.check(path: file, firmwareDirectory: firmwareDir)
            let errors = problems.filter { $0.severity == .error }.count
            let warnings = problems.filter { $0.severity == .warning }.count
            if output.json {
                struct Report: Encodable { let file: String; let rules: [String]; let errors: Int; let warnings: Int; let problems: [RuleProblem] }
                try printJSON(Report(file: file, rules: set?.rules.map(\.name) ?? [], errors: errors, warnings: warnings, problems: problems))
            } else {
                problems.forEach { print($0) }
                let count = set?.rules.count ?? 0
                print("\(file.escapedForDisplay): \(count) rule\(count == 1 ? "" : "s"), \(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")")
            }
            if errors > 0 { throw ExitCode(1) }
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import",
            abstract: "Write rules for the boards of an Arduino boards.txt.",
            discussion: """
            One rule per board, and per entry of its processor menu, whose bootloader file exists beside the \
            boards.txt (bootloaders/…): the part from build.mcu, the file by absolute path with its sha256 \
            pinned, the fuses and lock bits, and the clock the low fuse selects. Each rule passes \
            `bootmedic rules check` or is left out; boards left out are listed with the reason, on standard \
            error and at the end of the file. Debian's arduino-core-avr installs one at \
            /usr/share/arduino/hardware/arduino/avr/boards.txt; every Arduino IDE core has its own.
            """)

        @Argument(help: "The boards.txt to read.")
        var boardsTxt: String

        @Option(name: .customLong("board"), help: "Import only this board id (e.g. uno, nano); repeat for more.")
        var boards: [String] = []

        @Option(name: .shortAndLong, help: "Write the rules here instead of standard output.")
        var output: String?

        func run() throws {
            let imported: BoardImport
            do { imported = try BoardImport(file: try BoardsFile.load(path: boardsTxt), boards: boards) } catch {
                throw fail("\(error)")
            }
            let count = imported.rules.count
            if count > 0 {
                let text = imported.renderedFile(by: "bootmedic \(Bootmedic.configuration.version) rules import")
                if let output {
                    try writeOutput(text, to: output)
                } else {
                    print(text, terminator: "")
                }
            }
            printError("\(count) rule\(count == 1 ? "" : "s") from \(boardsTxt.escapedForDisplay)\(count > 0 ? output.map { " written to \($0)" } ?? "" : "")"
                + (imported.skipped.isEmpty ? "" : "; \(imported.skipped.count) left out:"))
            imported.skipped.forEach { printError("  \($0)") }
            if count == 0 { throw fail("no board of \(boardsTxt) could be made a rule; nothing written") }
        }
    }
}
