import ArgumentParser
import DeviceCatalog
import FoundationEssentials
import Rules

struct DevicesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "Show the device catalog, and write the udev rules made from it.",
        subcommands: [List.self, UdevRulesCommand.self])

    /// The built-in catalog, with a rules file's `[[programmer]]` entries in front when one is named.
    struct CatalogOptions: ParsableArguments {
        @Option(help: "A rules file whose [[programmer]] entries go in front of the built-in table.")
        var rules: String?

        func catalog() throws -> DeviceCatalog {
            guard let rules else { return .builtIn }
            let loaded = RulesFile.load(path: rules, firmwareDirectory: nil)
            guard let set = loaded.ruleSet, loaded.errors.isEmpty else {
                loaded.errors.forEach { printError($0.description) }
                throw fail("\(rules) has errors; see `bootmedic rules check \(rules)`", code: 7)
            }
            return set.deviceCatalog
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "Every USB device bootmedic knows, in the order it decides: the first matching line wins.")

        @OptionGroup var source: CatalogOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let entries = try source.catalog().entries
            if output.json {
                struct Row: Encodable { let usb: String; let product: String?; let role: String; let name: String; let declared: Bool }
                return try printJSON(entries.map { Row(usb: $0.usb.description, product: $0.product, role: $0.role.label, name: $0.name, declared: $0.declared) })
            }
            for entry in entries {
                let usb = entry.usb.description + (entry.product.map { " \"\($0)\"" } ?? "")
                print(usb.padding(26) + entry.role.label.padding(26)
                      + entry.name + (entry.declared ? " (rules file)" : ""))
            }
        }
    }

    struct UdevRulesCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "udev-rules",
            abstract: "Write the udev rules for the catalog (60-bootmedic.rules).",
            discussion: """
            The rules give the bootmedic group and the person at the seat access to every programmer in the \
            catalog and keep ModemManager off the serial devices that may carry programmer firmware. With \
            --rules, a workshop's [[programmer]] entries come first: install the result over the shipped \
            file (-o /etc/udev/rules.d/60-bootmedic.rules) and run `udevadm control --reload`.
            """)

        @OptionGroup var source: CatalogOptions

        @Option(name: .shortAndLong, help: "Write here instead of standard output.")
        var output: String?

        func run() throws {
            let text = UdevRules.render(try source.catalog())
            guard let output else { return print(text, terminator: "") }
            try writeOutput(text, to: output)
        }
    }
}
