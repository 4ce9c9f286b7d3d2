import ArgumentParser
import Parts
import Rules

struct FusesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fuses", abstract: "Explain fuse values.", subcommands: [Decode.self])

    struct Decode: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "decode",
            abstract: "Decode fuse bytes into clock, boot section, reset vector and enabled features, and lint them.")

        @Argument(help: "The part, e.g. atmega32u4.")
        var part: String

        @Option(help: "Low fuse byte (0x5E).") var low: HexByte?
        @Option(help: "High fuse byte (0x99).") var high: HexByte?
        @Option(help: "Extended fuse byte (0xF3).") var extended: HexByte?

        @OptionGroup var output: OutputOptions

        func validate() throws {
            if low == nil && high == nil && extended == nil { throw ValidationError("give at least one of --low, --high, --extended") }
        }

        struct Report: Encodable {
            struct Clock: Encodable { let source: String; let detail: String; let cksel: UInt8; let sut: UInt8; let dividedBy8: Bool? }
            struct Boot: Encodable { let bootsz: UInt8; let start: UInt32; let bytes: Int }
            let part: String
            let fuses: FuseSet
            let clock: Clock?
            let bootSection: Boot?
            let resetVector: String?
            let fields: [DecodedField]
            let findings: [Finding]
        }

        func run() throws {
            guard case let .avr(avr)? = PartCatalog.part(named: part) else {
                throw fail("unknown AVR part '\(part)'\(suggestion(for: part, among: PartCatalog.avrParts.map(\.id))); `bootmedic parts` lists the \(PartCatalog.avrParts.count) AVR parts bootmedic knows")
            }
            let fuses = FuseSet(low: low?.value, high: high?.value, extended: extended?.value)
            let description = avr.describe(fuses)
            let findings = avr.lint(fuses, board: nil, current: avr.factoryFuses)
                .filter { ![.changesClockSource, .changesClockDivider, .changesClockOutput, .changesStartUpTime].contains($0.code) }
            if output.json {
                try printJSON(Report(
                    part: avr.id, fuses: fuses,
                    clock: description.clock.map { .init(source: $0.source.rawValue, detail: $0.detail, cksel: $0.cksel, sut: $0.sut, dividedBy8: $0.dividedBy8) },
                    bootSection: description.bootSection.map { .init(bootsz: $0.bootsz, start: $0.start, bytes: $0.size) },
                    resetVector: description.resetVector?.description, fields: description.fields, findings: findings))
            } else {
                description.lines.forEach { print($0) }
                findings.forEach { print($0) }
            }
            if findings.contains(where: { $0.severity == .error }) { throw ExitCode(1) }
        }
    }
}
