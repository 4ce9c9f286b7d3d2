import CSystemd
import FoundationEssentials

/// One finished job as the journal recorded it.
public struct JobRecord: Sendable, Equatable {
    public let job: String
    public let programmer: String
    public let port: String
    public let result: String
    public let message: String
    public let part: String?
    /// The earlier job this one finished, if it resumed an interrupted restore.
    public let resumes: String?
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
            records.append(JobRecord { name in
                var data: UnsafeRawPointer?
                var length = 0
                guard name.withCString({ sd_journal_get_data(journal, $0, &data, &length) }) >= 0, let data else { return nil }
                return Array(UnsafeRawBufferPointer(start: data, count: length))
            })
        }
        return records.reversed()
    }
}

extension JobRecord {
    /// A record from an entry's fields, each as the journal stores it (`NAME=value`, any bytes; the value
    /// may hold `=` and newlines). `field` gives the stored bytes of a field, nil if the entry lacks it.
    public init(field: (String) -> [UInt8]?) {
        func value(_ name: String) -> String? {
            guard let data = field(name) else { return nil }
            let prefix = Array((name + "=").utf8)
            // sd_journal_get_data returns the name too; anything else is not this field.
            guard data.starts(with: prefix) else { return nil }
            return String(decoding: data[prefix.count...], as: UTF8.self)
        }
        self.init(job: value("BOOTMEDIC_JOB") ?? "?", programmer: value("BOOTMEDIC_PROGRAMMER") ?? "?",
                  port: value("BOOTMEDIC_PORT") ?? "?", result: value("BOOTMEDIC_RESULT") ?? "?",
                  message: value("MESSAGE") ?? "", part: value("BOOTMEDIC_PART"), resumes: value("BOOTMEDIC_RESUMES"))
    }
}
