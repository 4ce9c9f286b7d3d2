import ArgumentParser
import Glibc

@main
struct Bootmedic: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bootmedic",
        abstract: "Restores bootloaders and fuses on AVR and STM32 boards through ISP and SWD programmers.",
        version: "0.1.0",
        subcommands: [ProbeCommand.self, RestoreCommand.self, FlashCommand.self, RehearseCommand.self, SimulateCommand.self, AgentCommand.self, StatusCommand.self, ReplayCommand.self, SelfTestCommand.self, RulesCommand.self, DevicesCommand.self, HexCommand.self, PartsCommand.self, FusesCommand.self]
    )

    /// swift-argument-parser's main, except that a failure bootmedic has already reported (`fail`: an
    /// exit code alone) exits at once: the parser would otherwise try every error type it knows on it.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let code as ExitCode {
            Glibc.exit(code.rawValue)   // (exit flushes standard output)
        } catch {
            exit(withError: error)
        }
    }
}
