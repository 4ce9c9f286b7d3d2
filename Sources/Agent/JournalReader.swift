import CSystemd
import Foundation

/// One finished job as the journal recorded it.
public struct JobRecord: Sendable, Equatable {
    public let job: String
    public let programmer: String
    public let port: String
    public let result: String
    public let message: String
    public let part: String?
}

/// Reads bootmedic's entries back through the sd-journal API (`sd_journal_open`, matches, iteration).
public enum JournalReader {
    /// The last `limit` finished jobs, oldest first.
    public static func recentJobs(limit: Int = 200) throws -> [JobRecord] {
        var journal: OpaquePointer?
        let opened = sd_journal_open(&journal, Int32(SD_JOURNAL_LOCAL_ONLY))
        guard opened >= 0, let journal else { throw DeviceWatcherError.udev("cannot open the journal: \(String(cString: strerror(-opened)))") }
        defer { sd_journal_close(journal) }
        for id in [JournalMessage.restored.id, JournalMessage.healthy.id, JournalMessage.failed.id] {
            let match = "MESSAGE_ID=\(id)"
            _ = match.withCString { sd_journal_add_match(journal, $0, 0) }
            sd_journal_add_disjunction(journal)
        }
        sd_journal_seek_tail(journal)
        var records: [JobRecord] = []
        while records.count < limit, sd_journal_previous(journal) > 0 {
            func field(_ name: String) -> String? {
                var data: UnsafeRawPointer?
                var length = 0
                guard name.withCString({ sd_journal_get_data(journal, $0, &data, &length) }) >= 0, let data else { return nil }
                let text = String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
                return text.split(separator: "=", maxSplits: 1).last.map(String.init)
            }
            records.append(JobRecord(job: field("BOOTMEDIC_JOB") ?? "?", programmer: field("BOOTMEDIC_PROGRAMMER") ?? "?",
                                     port: field("BOOTMEDIC_PORT") ?? "?", result: field("BOOTMEDIC_RESULT") ?? "?",
                                     message: field("MESSAGE") ?? "", part: field("BOOTMEDIC_PART")))
        }
        return records.reversed()
    }
}
