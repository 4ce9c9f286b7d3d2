import CSystemd
import FoundationEssentials
import Glibc

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
    /// `[defaults] bench` of the rules the bench ran with (BOOTMEDIC_BENCH), if it had one.
    public var bench: String? = nil
    /// The machine that wrote the entry (journald's own `_HOSTNAME`).
    public var host: String? = nil
    public var rule: String? = nil
    /// The step a failed job stopped at.
    public var step: String? = nil
    /// What went wrong, without the job's backup folder or clock-raise note (BOOTMEDIC_REASON).
    public var reason: String? = nil
    public var exitStatus: Int? = nil
    public var durationMilliseconds: Int? = nil
    /// When the entry was written, in microseconds since the epoch (the journal's realtime stamp).
    public var microseconds: UInt64 = 0

    public init(job: String, programmer: String, port: String, result: String, message: String, part: String?, resumes: String?) {
        self.job = job
        self.programmer = programmer
        self.port = port
        self.result = result
        self.message = message
        self.part = part
        self.resumes = resumes
    }

    /// The name a workshop knows the bench by: its `bench` key, else the host's name.
    public var benchName: String { bench ?? host ?? "this bench" }
}

/// Which journal to read: this machine's, a folder of journal files (a collector's
/// `/var/log/journal/remote`), or some files.
public enum JournalSource: Sendable, Equatable {
    case local
    case directory(String)
    case files([String])
}

/// A half-open window of the journal's realtime stamps, in microseconds since the epoch; nil is open.
public struct JournalWindow: Sendable, Equatable {
    public var since: UInt64?
    public var until: UInt64?

    public init(since: UInt64? = nil, until: UInt64? = nil) {
        self.since = since
        self.until = until
    }

    public func contains(_ microseconds: UInt64) -> Bool {
        (since.map { microseconds >= $0 } ?? true) && (until.map { microseconds < $0 } ?? true)
    }
}

/// Why a journal could not be read.
public struct JournalReadError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Reads bootmedic's entries back through the sd-journal API (`sd_journal_open*`, matches, seeking by
/// time, iteration, `sd_journal_wait` for new entries).
public final class JournalReader {
    private let journal: OpaquePointer
    private let library: LibSystemd

    /// Opens `source`. A folder or file that is not there, or holds no journal, is an error that names it.
    public init(_ source: JournalSource) throws(JournalReadError) {
        switch LibSystemd.shared {
        case let .success(loaded): library = loaded
        case let .failure(unavailable): throw JournalReadError(description: unavailable.description)
        }
        var handle: OpaquePointer?
        let opened: Int32
        switch source {
        case .local:
            // Every namespace: a bench whose service logs to its own (LogNamespace=bootmedic, README: Workshop).
            opened = library.journalOpen(&handle, Int32(SD_JOURNAL_LOCAL_ONLY | SD_JOURNAL_ALL_NAMESPACES))
        case let .directory(path):
            var info = stat()
            guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
                throw JournalReadError(description: "\(path): no such folder")
            }
            opened = library.journalOpenDirectory(&handle, path, 0)
        case let .files(paths):
            var info = stat()
            for path in paths where stat(path, &info) != 0 || info.st_mode & S_IFMT != S_IFREG {
                throw JournalReadError(description: "\(path): no such file")
            }
            let copies = paths.map { strdup($0) }
            defer { copies.forEach { free($0) } }
            var pointers = copies.map { UnsafePointer($0) } + [nil]
            opened = library.journalOpenFiles(&handle, &pointers, 0)
        }
        guard opened >= 0, let handle else {
            throw JournalReadError(description: "cannot open the journal: \(String(cString: strerror(-opened)))")
        }
        journal = handle
    }

    deinit { library.journalClose(journal) }

    /// Only entries of these kinds from here on (all kinds when empty).
    public func match(_ kinds: [JournalMessage]) {
        library.journalFlushMatches(journal)
        for kind in kinds {
            _ = "MESSAGE_ID=\(kind.id)".withCString { library.journalAddMatch(journal, $0, 0) }
            _ = library.journalAddDisjunction(journal)
        }
    }

    /// Finished jobs (restored, healthy, failed) in `window`, oldest first; with a `limit`, only the last ones.
    public func jobs(in window: JournalWindow, limit: Int? = nil) -> [JobRecord] {
        match([.restored, .healthy, .failed])
        var records: [JobRecord] = []
        if let limit {
            // The newest first from the window's end, as many as asked.
            _ = window.until.map { library.journalSeekRealtime(journal, $0) } ?? library.journalSeekTail(journal)
            while records.count < limit, library.journalPrevious(journal) > 0 {
                let record = current()
                if let since = window.since, record.microseconds < since { break }
                if window.contains(record.microseconds) { records.append(record) }
            }
            return records.reversed()
        }
        seek(to: window.since)
        while library.journalNext(journal) > 0 {
            let record = current()
            if let until = window.until, record.microseconds >= until { break }
            if window.contains(record.microseconds) { records.append(record) }
        }
        return records
    }

    /// Every entry of bootmedic's in `window` as a kind and its fields, oldest first, then any that arrive
    /// while `keepGoing` says so, waiting at most `poll` seconds at a time; `handle` gets each, `idle` runs
    /// each time the reader has caught up.
    public func follow(from window: JournalWindow, poll: Double = 0.25, keepGoing: () -> Bool,
                       handle: (JournalMessage, ReadEntry) -> Void, idle: () -> Void = {}) {
        match(JournalMessage.allCases)
        seek(to: window.since)
        let kinds = Dictionary(uniqueKeysWithValues: JournalMessage.allCases.map { ($0.id, $0) })
        while keepGoing() {
            while library.journalNext(journal) > 0 {
                let entry = ReadEntry(field: field, microseconds: realtime())
                if let until = window.until, entry.microseconds >= until { return }
                if let id = entry["MESSAGE_ID"], let kind = kinds[id] { handle(kind, entry) }
            }
            idle()
            // A window that has ended gets no more entries.
            guard keepGoing(), window.until.map({ JournalTime.now < $0 }) ?? true else { return }
            _ = library.journalWait(journal, UInt64(poll * 1_000_000))
        }
    }

    /// To the first entry at or after `microseconds`, or to the first of all.
    private func seek(to microseconds: UInt64?) {
        _ = microseconds.map { library.journalSeekRealtime(journal, $0) } ?? library.journalSeekHead(journal)
    }

    private func current() -> JobRecord {
        var record = JobRecord(field: field)
        record.microseconds = realtime()
        return record
    }

    private func realtime() -> UInt64 {
        var microseconds: UInt64 = 0
        _ = library.journalGetRealtime(journal, &microseconds)
        return microseconds
    }

    private func field(_ name: String) -> [UInt8]? {
        var data: UnsafeRawPointer?
        var length = 0
        guard name.withCString({ library.journalGetData(journal, $0, &data, &length) }) >= 0, let data else { return nil }
        return Array(UnsafeRawBufferPointer(start: data, count: length))
    }
}

/// The fields of one entry that a live view shows, read as the journal stores them.
public struct ReadEntry: Sendable, Equatable {
    public let fields: [String: String]
    public let microseconds: UInt64

    /// The names read.
    static let names = ["MESSAGE", "MESSAGE_ID", "_HOSTNAME", "BOOTMEDIC_BENCH", "BOOTMEDIC_JOB", "BOOTMEDIC_PROGRAMMER", "BOOTMEDIC_PORT",
                        "BOOTMEDIC_PART", "BOOTMEDIC_RULE", "BOOTMEDIC_STEP", "BOOTMEDIC_RESULT", "BOOTMEDIC_DURATION_MS"]

    public init(fields: [String: String], microseconds: UInt64) {
        self.fields = fields
        self.microseconds = microseconds
    }

    init(field: (String) -> [UInt8]?, microseconds: UInt64) {
        var fields: [String: String] = [:]
        for name in Self.names { fields[name] = storedValue(name, field) }
        self.init(fields: fields, microseconds: microseconds)
    }

    public subscript(name: String) -> String? { fields[name] }
}

/// The value of field `name` from the bytes sd-journal stores (`NAME=value`, any bytes; the value may hold
/// `=` and newlines); nil if the entry lacks it or the data is another field's.
private func storedValue(_ name: String, _ field: (String) -> [UInt8]?) -> String? {
    guard let data = field(name) else { return nil }
    let prefix = Array((name + "=").utf8)
    guard data.starts(with: prefix) else { return nil }
    return String(decoding: data[prefix.count...], as: UTF8.self)
}

extension JobRecord {
    /// A record from an entry's fields, each as the journal stores it (`NAME=value`, any bytes; the value
    /// may hold `=` and newlines). `field` gives the stored bytes of a field, nil if the entry lacks it.
    public init(field: (String) -> [UInt8]?) {
        func value(_ name: String) -> String? { storedValue(name, field) }
        self.init(job: value("BOOTMEDIC_JOB") ?? "?", programmer: value("BOOTMEDIC_PROGRAMMER") ?? "?",
                  port: value("BOOTMEDIC_PORT") ?? "?", result: value("BOOTMEDIC_RESULT") ?? "?",
                  message: value("MESSAGE") ?? "", part: value("BOOTMEDIC_PART"), resumes: value("BOOTMEDIC_RESUMES"))
        bench = value("BOOTMEDIC_BENCH")
        host = value("_HOSTNAME")
        rule = value("BOOTMEDIC_RULE")
        step = value("BOOTMEDIC_STEP")
        reason = value("BOOTMEDIC_REASON")
        exitStatus = value("BOOTMEDIC_EXIT_STATUS").flatMap { Int($0) }
        durationMilliseconds = value("BOOTMEDIC_DURATION_MS").flatMap { Int($0) }
    }
}
