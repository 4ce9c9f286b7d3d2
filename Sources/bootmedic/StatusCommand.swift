import Agent
import ArgumentParser
import Foundation

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Summarise recent jobs from the journal: per programmer, restored, healthy and failed, with reasons.")

    @Option(help: "How many recent jobs to read.")
    var limit = 200

    @OptionGroup var output: OutputOptions

    func run() throws {
        let jobs: [JobRecord]
        do { jobs = try JournalReader.recentJobs(limit: limit) } catch { throw fail("\(error)") }
        let groups = Dictionary(grouping: jobs) { "\($0.programmer) at \($0.port)" }
        if output.json {
            struct Summary: Encodable { let programmer: String; let restored: Int; let healthy: Int; let failed: Int; let failures: [String] }
            try printJSON(groups.keys.sorted().map { key in
                let list = groups[key]!
                return Summary(programmer: key, restored: list.filter { $0.result == "restored" }.count,
                               healthy: list.filter { $0.result == "healthy" }.count, failed: list.filter { $0.result == "failed" }.count,
                               failures: list.filter { $0.result == "failed" }.map(\.message))
            })
            return
        }
        guard !jobs.isEmpty else { print("no bootmedic jobs in the journal"); return }
        for key in groups.keys.sorted() {
            let list = groups[key]!
            let count = { (r: String) in list.filter { $0.result == r }.count }
            print("\(key): \(count("restored")) restored, \(count("healthy")) healthy, \(count("failed")) failed")
            for failure in list.filter({ $0.result == "failed" }).suffix(5) { print("  \(failure.message)") }
        }
    }
}
