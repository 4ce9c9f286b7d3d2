import Dispatch
import FoundationEssentials
import Glibc
import Transport

/// SIGTERM and SIGINT turned into something to wait for: the process runs its loop until one arrives.
/// Keep the value in use until the wait ends; dropping it restores nothing and stops catching the signals.
final class TerminationSignals: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    /// Created once and only cancelled again, from `deinit`.
    nonisolated(unsafe) private let sources: [DispatchSourceSignal]

    init() {
        let semaphore = self.semaphore
        sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { semaphore.signal() }
            source.resume()
            return source
        }
    }

    deinit { sources.forEach { $0.cancel() } }

    /// Waits for a signal (or `end()`).
    func wait() { semaphore.wait() }

    /// Waits for a signal (or `end()`) until `deadline`; true when one came.
    func wait(until deadline: DispatchTime) -> Bool { semaphore.wait(timeout: deadline) == .success }

    /// Ends a wait as a signal would: the end of input, say.
    func end() { semaphore.signal() }

    /// Ends a wait when standard input closes too (a parent process's way to say "stop").
    func endWhenStandardInputCloses() {
        _ = WorkerThread(name: "stdin watch") { [self] _ in
            var buffer = [UInt8](repeating: 0, count: 256)
            while buffer.withUnsafeMutableBytes({ read(STDIN_FILENO, $0.baseAddress, $0.count) }) > 0 {}
            end()
        }
    }
}
