import Dispatch
import Glibc
import Synchronization

/// A named thread that runs one body until it returns, with a stop request it can poll and a join that
/// waits for it: the lifecycle a bench slot, the udev monitor and a simulator's server share.
public final class WorkerThread: Sendable {
    private let stopRequested = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let joined = Atomic<Bool>(false)
    /// Signalled once by ``requestStop()``: ends a ``sleep(_:)`` at once.
    private let wake = DispatchSemaphore(value: 0)

    /// Starts `body` on a new thread called `name`; `body` gets the worker to poll ``isStopRequested``.
    public init(name: String, _ body: @escaping @Sendable (WorkerThread) -> Void) {
        let start = Unmanaged.passRetained(Start { [self] in
            let named = String(decoding: name.utf8.prefix(15), as: UTF8.self)   // the kernel keeps 15 bytes
            _ = setThreadName(pthread_self(), named)
            body(self)
            finished.signal()
        })
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { argument in
            let start = Unmanaged<Start>.fromOpaque(argument!).takeRetainedValue()
            start.body()
            return nil
        }, start.toOpaque())
        precondition(created == 0, "pthread_create failed: \(created)")
        pthread_detach(thread)
    }

    private final class Start {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Whether ``requestStop()`` was called: the body returns at its next safe point.
    public var isStopRequested: Bool { stopRequested.load(ordering: .acquiring) }

    /// Asks the body to return; does not wait.
    public func requestStop() {
        if !stopRequested.exchange(true, ordering: .acquiringAndReleasing) { wake.signal() }
    }

    /// Waits until the body has returned (at once if it already has, and on every later call).
    public func join() {
        guard !joined.load(ordering: .acquiring) else { return }
        finished.wait()
        finished.signal()   // later joins pass too
        joined.store(true, ordering: .releasing)
    }

    /// Waits at most `seconds` for the body to return; true if it has.
    public func join(timeout seconds: Double) -> Bool {
        guard !joined.load(ordering: .acquiring) else { return true }
        guard finished.wait(timeout: .now() + seconds) == .success else { return false }
        finished.signal()
        joined.store(true, ordering: .releasing)
        return true
    }

    /// Asks the body to return and waits until it has.
    public func stop() {
        requestStop()
        join()
    }

    /// Sleeps up to `seconds`, returning as soon as a stop is requested. One wake-up per sleep, however
    /// long: eight idle slots looking once a second cost eight, not the 160 of 50 ms slices.
    public func sleep(_ seconds: Double) {
        guard !isStopRequested, seconds > 0 else { return }
        // The stop's signal is put back, so that every later sleep returns at once too.
        if wake.wait(timeout: .now() + seconds) == .success { wake.signal() }
    }
}

/// glibc's `pthread_setname_np`, which its module map hides behind _GNU_SOURCE.
@_silgen_name("pthread_setname_np")
private func setThreadName(_ thread: pthread_t, _ name: UnsafePointer<CChar>) -> Int32
