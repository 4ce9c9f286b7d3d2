import ArgumentParser

@main
struct Bootmedic: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bootmedic",
        abstract: "Restores bootloaders and fuses on AVR and STM32 boards through ISP and SWD programmers.",
        version: "0.1.0",
        subcommands: [ProbeCommand.self, RestoreCommand.self, RehearseCommand.self, SimulateCommand.self, AgentCommand.self, StatusCommand.self, ReplayCommand.self, SelfTestCommand.self, RulesCommand.self, DevicesCommand.self, HexCommand.self, PartsCommand.self, FusesCommand.self]
    )
}
