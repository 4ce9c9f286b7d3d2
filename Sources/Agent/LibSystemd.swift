import CSystemd
import Glibc

/// libsystemd's functions that bootmedic calls, loaded with `dlopen` when the journal or systemd is first
/// used rather than by the dynamic loader at every start.
///
/// Linked the usual way, libsystemd and the five libraries it pulls in (libgcrypt, liblzma, libzstd,
/// liblz4, libcap) are mapped and relocated before `main` of every command, about 1.3 ms of an 11 ms
/// start-up (the README's start-up table), though most commands (restore, rehearse, rules, parts, hex,
/// fuses) never journal. The declarations stay those of `CSystemd` (its header; the types and flags come
/// from there); only the function addresses are looked up here. The package depends on libsystemd0 by
/// name for it.
struct LibSystemd: Sendable {
    typealias Journal = OpaquePointer

    let journalSendv: @convention(c) (UnsafePointer<iovec>?, Int32) -> Int32
    let notify: @convention(c) (Int32, UnsafePointer<CChar>?) -> Int32
    let watchdogEnabled: @convention(c) (Int32, UnsafeMutablePointer<UInt64>?) -> Int32
    let journalOpen: @convention(c) (UnsafeMutablePointer<Journal?>?, Int32) -> Int32
    let journalOpenDirectory: @convention(c) (UnsafeMutablePointer<Journal?>?, UnsafePointer<CChar>?, Int32) -> Int32
    let journalOpenFiles: @convention(c) (UnsafeMutablePointer<Journal?>?, UnsafeMutablePointer<UnsafePointer<CChar>?>?, Int32) -> Int32
    let journalClose: @convention(c) (Journal?) -> Void
    let journalAddMatch: @convention(c) (Journal?, UnsafeRawPointer?, Int) -> Int32
    let journalAddDisjunction: @convention(c) (Journal?) -> Int32
    let journalFlushMatches: @convention(c) (Journal?) -> Void
    let journalSeekHead: @convention(c) (Journal?) -> Int32
    let journalSeekTail: @convention(c) (Journal?) -> Int32
    let journalSeekRealtime: @convention(c) (Journal?, UInt64) -> Int32
    let journalNext: @convention(c) (Journal?) -> Int32
    let journalPrevious: @convention(c) (Journal?) -> Int32
    let journalGetData: @convention(c) (Journal?, UnsafePointer<CChar>?, UnsafeMutablePointer<UnsafeRawPointer?>?, UnsafeMutablePointer<Int>?) -> Int32
    let journalGetRealtime: @convention(c) (Journal?, UnsafeMutablePointer<UInt64>?) -> Int32
    let journalWait: @convention(c) (Journal?, UInt64) -> Int32

    /// The library as this process loaded it on first use, or why it could not.
    static let shared: Result<LibSystemd, LibSystemdUnavailable> = Result { () throws(LibSystemdUnavailable) in try LibSystemd(soname: "libsystemd.so.0") }

    private init(soname: String) throws(LibSystemdUnavailable) {
        guard let library = dlopen(soname, RTLD_NOW | RTLD_LOCAL) else {
            throw LibSystemdUnavailable(reason: dlerror().map { String(cString: $0) } ?? "dlopen failed")
        }
        func function<F>(_ name: String) throws(LibSystemdUnavailable) -> F {
            guard let address = dlsym(library, name) else { throw LibSystemdUnavailable(reason: "\(soname) has no \(name)") }
            return unsafeBitCast(address, to: F.self)
        }
        journalSendv = try function("sd_journal_sendv")
        notify = try function("sd_notify")
        watchdogEnabled = try function("sd_watchdog_enabled")
        journalOpen = try function("sd_journal_open")
        journalOpenDirectory = try function("sd_journal_open_directory")
        journalOpenFiles = try function("sd_journal_open_files")
        journalClose = try function("sd_journal_close")
        journalAddMatch = try function("sd_journal_add_match")
        journalAddDisjunction = try function("sd_journal_add_disjunction")
        journalFlushMatches = try function("sd_journal_flush_matches")
        journalSeekHead = try function("sd_journal_seek_head")
        journalSeekTail = try function("sd_journal_seek_tail")
        journalSeekRealtime = try function("sd_journal_seek_realtime_usec")
        journalNext = try function("sd_journal_next")
        journalPrevious = try function("sd_journal_previous")
        journalGetData = try function("sd_journal_get_data")
        journalGetRealtime = try function("sd_journal_get_realtime_usec")
        journalWait = try function("sd_journal_wait")
    }
}

/// libsystemd.so.0 could not be loaded, or lacks a function bootmedic calls.
public struct LibSystemdUnavailable: Error, CustomStringConvertible, Sendable {
    public let reason: String
    public var description: String { "libsystemd cannot be used: \(reason)" }
}
