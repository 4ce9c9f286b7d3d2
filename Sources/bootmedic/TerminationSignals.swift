import Dispatch
import FoundationEssentials
import Glibc
import Transport

/// The write end of the pipe SIGTERM and SIGINT are turned into. A signal handler reaches no Swift object,
/// only this descriptor: one pipe for the process, set before the handler is installed.
nonisolated(unsafe) private var signalPipeWriteEnd: Int32 = -1

/// SIGTERM and SIGINT turned into something to wait for: the process runs its loop until one arrives.
/// Keep the value in use until the wait ends; dropping it restores the default actions.
///
/// The handler writes a byte into a pipe (the self-pipe way) rather than going through a dispatch signal
/// source: that one starts libdispatch's manager thread, whose priority an unprivileged service may not
/// set, and libdispatch then logs "Failed to set thread priority" into the journal at every start.
final class TerminationSignals: Sendable {
    private let readEnd: Int32
    private let writeEnd: Int32
    private static let numbers = [SIGTERM, SIGINT]

    init() {
        var ends: [Int32] = [-1, -1]
        precondition(pipe(&ends) == 0, "cannot make the signal pipe: errno \(errno)")
        (readEnd, writeEnd) = (ends[0], ends[1])
        for end in ends {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, O_NONBLOCK)
        }
        signalPipeWriteEnd = writeEnd
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in
            let saved = errno
            var byte: UInt8 = 1
            _ = write(signalPipeWriteEnd, &byte, 1)
            errno = saved
        }
        action.sa_flags = SA_RESTART
        for number in Self.numbers { sigaction(number, &action, nil) }
        // A parent may have started us with the two blocked (a test runner's Process does): this thread
        // takes them, also those already pending.
        var set = sigset_t()
        sigemptyset(&set)
        for number in Self.numbers { sigaddset(&set, number) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    deinit {
        for number in Self.numbers { signal(number, SIG_DFL) }
        close(readEnd)
        close(writeEnd)
    }

    /// Waits for a signal (or `end()`).
    func wait() { _ = take(until: nil) }

    /// Waits for a signal (or `end()`) until `deadline`; true when one came.
    func wait(until deadline: DispatchTime) -> Bool { take(until: deadline) }

    /// Ends a wait as a signal would: the end of input, say.
    func end() {
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)
    }

    /// Ends a wait when standard input closes too (a parent process's way to say "stop").
    func endWhenStandardInputCloses() {
        _ = WorkerThread(name: "stdin watch") { [self] _ in
            var buffer = [UInt8](repeating: 0, count: 256)
            while buffer.withUnsafeMutableBytes({ read(STDIN_FILENO, $0.baseAddress, $0.count) }) > 0 {}
            end()
        }
    }

    /// One signal taken from the pipe, waiting for it until `deadline` (nil: for ever).
    private func take(until deadline: DispatchTime?) -> Bool {
        var descriptor = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
        var byte: UInt8 = 0
        while read(readEnd, &byte, 1) != 1 {
            var timeout: Int32 = -1
            if let deadline {
                let now = DispatchTime.now().uptimeNanoseconds
                guard deadline.uptimeNanoseconds > now else { return false }
                timeout = Int32(min((deadline.uptimeNanoseconds - now + 999_999) / 1_000_000, UInt64(Int32.max)))
            }
            if poll(&descriptor, 1, timeout) < 0 && errno != EINTR { return false }
        }
        return true
    }
}
