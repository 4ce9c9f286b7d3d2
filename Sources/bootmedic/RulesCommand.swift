import ArgumentParser
import Parts
import Rules

struct RulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rules", abstract: "Work with rules files.", subcommands: [Check.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
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
                print("\(file): \(count) rule\(count == 1 ? "" : "s"), \(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")")
            }
            if errors > 0 { throw ExitCode(1) }
        }
    }
}
