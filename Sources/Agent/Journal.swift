import FoundationEssentials
import Glibc
import Synchronization
import Transport

/// The systemd journal through libsystemd's `sd_journal_sendv`: one structured entry per call. Without a
/// running journald the entries are dropped, as libsystemd does.
public final class SystemJournal: JournalWriter {
    private let library: LibSystemd

    /// Loads libsystemd if nothing has yet.
    public init() throws(LibSystemdUnavailable) { library = try LibSystemd.shared.get() }

    /// `sd_journal_sendv` with the entry's fields.
    public func write(_ entry: JournalEntry) {
        let send = library.journalSendv
        var storage = entry.fieldStrings.map { Array($0.utf8) }
        _ = storage.withUnsafeMutableBufferPointer { buffers -> Int32 in
            var vectors = buffers.map { buffer in
                iovec(iov_base: UnsafeMutableRawPointer(mutating: buffer.withUnsafeBytes { $0.baseAddress }), iov_len: buffer.count)
            }
            return send(&vectors, Int32(vectors.count))
        }
    }
}

/// Entries as lines on standard error, for a foreground run or when no journald is there.
public final class ConsoleJournal: JournalWriter {
    /// One entry's line at a time.
    private let lock = Mutex(())
    public init() {}

    public func write(_ entry: JournalEntry) {
        let fields = entry.fields.filter { ["BOOTMEDIC_JOB", "BOOTMEDIC_RESULT", "BOOTMEDIC_STEP"].contains($0.key) }
            .sorted { $0.key < $1.key }.map { "\($0.key.dropFirst(10).lowercased())=\($0.value)" }.joined(separator: " ")
        lock.withCheckedLock { _ in
            OutputFile.writeToStandardError("<\(entry.priority)> \(entry.message)\(fields.isEmpty ? "" : "  [\(fields)]")\n")
        }
    }
}

/// Adds the same fields to every entry before passing it on: the bench's name (BOOTMEDIC_BENCH), so that a
/// workshop's collected journal tells its benches apart.
public final class StampedJournal: JournalWriter {
    private let stamp: [String: String]
    private let writer: JournalWriter

    /// Entries get `stamp`'s fields (an entry's own field of the same name wins) and go on to `writer`.
    public init(_ stamp: [String: String], onto writer: JournalWriter) {
        self.stamp = stamp
        self.writer = writer
    }

    public func write(_ entry: JournalEntry) {
        var stamped = entry
        stamped.fields.merge(stamp) { own, _ in own }
        writer.write(stamped)
    }
}

/// Writes every entry to several writers.
public final class JournalFanOut: JournalWriter {
    private let writers: [JournalWriter]
    public init(_ writers: [JournalWriter]) { self.writers = writers }
    public func write(_ entry: JournalEntry) { writers.forEach { $0.write(entry) } }
}

/// `sd_notify`: readiness, status, watchdog and stopping, for `Type=notify` units.
public enum ServiceNotifier {
    /// Sends `state` ("READY=1", "STATUS=…", "WATCHDOG=1", "STOPPING=1") to systemd if it is listening;
    /// false without libsystemd, as nothing can then listen.
    @discardableResult
    public static func notify(_ state: String) -> Bool {
        guard case let .success(library) = LibSystemd.shared else { return false }
        return library.notify(0, state) > 0
    }

    /// The watchdog interval systemd asked for (`sd_watchdog_enabled`), if any.
    public static var watchdogInterval: Double? {
        guard case let .success(library) = LibSystemd.shared else { return nil }
        var usec: UInt64 = 0
        return library.watchdogEnabled(0, &usec) > 0 ? Double(usec) / 1e6 : nil
    }
}
