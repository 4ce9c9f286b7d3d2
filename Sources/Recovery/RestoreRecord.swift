#if canImport(Glibc)
import Glibc
#endif
import BenchModel
import FoundationEssentials

/// What is known of a restore that has begun changing a chip: written before the first destructive step,
/// updated at each step after it, removed when the chip is restored. A record still on disk when a job
/// starts means an earlier restore of this chip on this programmer never finished (the bench PC lost
/// power, the service was killed, or the job failed half-way): the new job finishes it from the erase,
/// with the backup the first job saved, and takes no second backup of the half-written chip.
public struct RestoreRecord: Codable, Sendable, Equatable {
    /// The job that wrote the record.
    public var job: String
    /// The job it resumed, if it was itself a resumption.
    public var resumes: String?
    /// What the chip was programmed through: a programmer kind ("usbasp") or a bootloader ("caterina").
    public var programmer: String
    public var programmerSerial: String?
    /// The bench socket (udev ID_PATH) or serial port.
    public var port: String?
    /// The part's name and what identifies it: an AVR's signature, an STM32's chip id.
    public var part: String
    public var target: String
    public var rule: String
    /// The sha256 of the rule's bootloader file as the job loaded it.
    public var bootloaderSHA256: String
    /// The backup of the chip as it was before the first job touched it.
    public var backup: String?
    /// The step the job had reached (started, not necessarily finished).
    public var step: RecoveryStep
    public var started: Date
    public var updated: Date
    /// Why the job stopped, when it failed rather than vanished.
    public var failure: String?

    public init(job: String, resumes: String? = nil, programmer: String, programmerSerial: String?, port: String?,
                part: String, target: String, rule: String, bootloaderSHA256: String, backup: String?,
                step: RecoveryStep, started: Date, updated: Date, failure: String? = nil) {
        self.job = job
        self.resumes = resumes
        self.programmer = programmer
        self.programmerSerial = programmerSerial
        self.port = port
        self.part = part
        self.target = target
        self.rule = rule
        self.bootloaderSHA256 = bootloaderSHA256
        self.backup = backup
        self.step = step
        self.started = started
        self.updated = updated
        self.failure = failure
    }

    /// The programmer or bootloader for people: "USBasp", "Caterina".
    public var programmerDescription: String {
        ProgrammerKind(rawValue: programmer)?.description ?? BootloaderKind(rawValue: programmer)?.description ?? programmer
    }

    /// Whether the record is about this chip on this programmer.
    public func matches(programmer identity: ProgrammerIdentity, target id: String) -> Bool {
        guard identity.linkName == programmer, id == target, identity.port == port else { return false }
        if let serial = programmerSerial, let other = identity.serialNumber { return serial == other }
        return true
    }
}

/// Why a record could not be kept.
public struct RestoreRecordError: Error, Sendable, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "cannot keep the restore record \(path): \(reason)" }
}

/// The records of restores in progress, one JSON file each in a folder of the service's state
/// (`/var/lib/bootmedic/jobs`), named by programmer and chip. Written atomically and durably: a file is
/// either the old record or the new one, whatever moment the power goes.
public struct RestoreRecords: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// The file of the record for a chip on a programmer.
    public func path(programmer identity: ProgrammerIdentity, target id: String) -> String {
        let place = identity.port ?? identity.serialNumber ?? "default"
        let name = "\(identity.linkName)-\(place)-\(id)".map { $0.isLetter || $0.isNumber || "-_.".contains($0) ? $0 : "_" }
        return directory + "/" + String(name) + ".json"
    }

    /// The unfinished restore of this chip on this programmer, if there is one.
    public func interrupted(programmer identity: ProgrammerIdentity, target id: String) throws(RestoreRecordError) -> RestoreRecord? {
        let file = path(programmer: identity, target: id)
        guard FileManager.default.fileExists(atPath: file) else { return nil }
        let record = try read(file)
        return record.matches(programmer: identity, target: id) ? record : nil
    }

    /// Every record in the folder, oldest first (for `status` and the agent's start); unreadable files are
    /// reported by name.
    public func all() -> (records: [RestoreRecord], unreadable: [RestoreRecordError]) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var records: [RestoreRecord] = []
        var unreadable: [RestoreRecordError] = []
        for name in names.sorted() where name.hasSuffix(".json") {
            do { records.append(try read(directory + "/" + name)) } catch { unreadable.append(error) }
        }
        return (records.sorted { $0.started < $1.started }, unreadable)
    }

    /// Writes `record` in place of any earlier one for its chip and programmer.
    public func write(_ record: RestoreRecord, programmer identity: ProgrammerIdentity) throws(RestoreRecordError) {
        let file = path(programmer: identity, target: record.target)
        let data: Data
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            data = try encoder.encode(record)
        } catch { throw RestoreRecordError(path: file, reason: "\(error)") }
        try replaceDurably(file, with: Array(data))
    }

    /// Removes the record of a finished restore.
    public func remove(programmer identity: ProgrammerIdentity, target id: String) throws(RestoreRecordError) {
        let file = path(programmer: identity, target: id)
        guard unlink(file) == 0 || errno == ENOENT else { throw RestoreRecordError(path: file, reason: String(cString: strerror(errno))) }
        syncDirectory()
    }

    private func read(_ file: String) throws(RestoreRecordError) -> RestoreRecord {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        guard let data = FileManager.default.contents(atPath: file) else { throw RestoreRecordError(path: file, reason: "cannot read it") }
        do { return try decoder.decode(RestoreRecord.self, from: data) } catch {
            throw RestoreRecordError(path: file, reason: "not a restore record (\(error)); the chip it was about may be half-written: "
                                     + "look at it, then remove the file to let the next job start afresh")
        }
    }

    /// Writes a temporary file beside `file`, flushes it to the disk, renames it over `file` and flushes
    /// the folder: after a crash the file is the old record or the new one, never a mix.
    private func replaceDurably(_ file: String, with bytes: [UInt8]) throws(RestoreRecordError) {
        func failure(_ what: String) -> RestoreRecordError { RestoreRecordError(path: file, reason: "\(what): \(String(cString: strerror(errno)))") }
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw RestoreRecordError(path: file, reason: "cannot create \(directory)")
        }
        let temporary = file + ".new"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw failure("cannot create \(temporary)") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { close(fd); throw failure("cannot write \(temporary)") }
            written += n
        }
        guard fsync(fd) == 0 else { close(fd); throw failure("cannot flush \(temporary)") }
        close(fd)
        guard rename(temporary, file) == 0 else { throw failure("cannot rename \(temporary)") }
        syncDirectory()
    }

    private func syncDirectory() {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}
