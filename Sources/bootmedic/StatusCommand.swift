import Agent
import ArgumentParser
import FoundationEssentials
import Recovery

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Summarise recent jobs from the journal: per programmer, restored, healthy and failed, with reasons; and restores left part-way.")

    @Option(help: "How many recent jobs to read.")
    var limit = 200

    @Option(help: ArgumentHelp("The service's state folder, whose jobs/ holds the records of restores in progress.", valueName: "dir"))
    var stateDir = "/var/lib/bootmedic"

    @OptionGroup var output: OutputOptions

    func run() throws {
        let jobs: [JobRecord]
        do { jobs = try JournalReader.recentJobs(limit: limit) } catch { throw fail("\(error)") }
        let (pending, unreadable) = RestoreRecords(directory: stateDir + "/jobs").all()
        let groups = Dictionary(grouping: jobs) { "\($0.programmer) at \($0.port)" }
        let resumed = jobs.compactMap { job in job.resumes.map { (job: job.job, resumes: $0, result: job.result) } }
        if output.json {
            struct Summary: Encodable { let programmer: String; let restored: Int; let healthy: Int; let failed: Int; let failures: [String] }
            struct Resumption: Encodable { let job: String; let resumes: String; let result: String }
            struct Report: Encodable { let programmers: [Summary]; let interrupted: [RestoreRecord]; let resumed: [Resumption] }
            try printJSON(Report(programmers: groups.keys.sorted().map { key in
                let list = groups[key]!
                return Summary(programmer: key, restored: list.filter { $0.result == "restored" }.count,
                               healthy: list.filter { $0.result == "healthy" }.count, failed: list.filter { $0.result == "failed" }.count,
                               failures: list.filter { $0.result == "failed" }.map(\.message))
            }, interrupted: pending, resumed: resumed.map { Resumption(job: $0.job, resumes: $0.resumes, result: $0.result) }))
            return
        }
        if jobs.isEmpty { print("no bootmedic jobs in the journal") }
        for key in groups.keys.sorted() {
            let list = groups[key]!
            let count = { (r: String) in list.filter { $0.result == r }.count }
            print("\(key): \(count("restored")) restored, \(count("healthy")) healthy, \(count("failed")) failed")
            for failure in list.filter({ $0.result == "failed" }).suffix(5) { print("  \(failure.message)") }
        }
        for resumption in resumed {
            print("job \(resumption.job) finished the interrupted job \(resumption.resumes): \(resumption.result)")
        }
        for record in pending {
            print("interrupted: job \(record.job) left \(record.part) on \(record.programmer.description) at \(record.port ?? "?") at \(record.step.rawValue)"
                  + (record.failure.map { " (\($0))" } ?? "") + "; finished when that chip is found again"
                  + (record.backup.map { "; backup \($0)" } ?? ""))
        }
        for problem in unreadable { printError("bootmedic: warning: \(problem)") }
    }
}
