#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Tells ThreadSanitizer about synchronisation it cannot see. On Linux `Synchronization.Mutex` locks with
/// futex calls inside the uninstrumented standard library, so two critical sections of one Mutex on two
/// threads look unordered: the sanitizer reported the lock's own value, and any object handed from one
/// thread to another under a Mutex (a simulator swapped in by a test, used by a bench slot), as races.
/// ``Synchronization/Mutex/withCheckedLock(_:)`` marks each critical section.
///
/// The annotations are looked up once at run time: in a normal build there is no sanitizer runtime and
/// both calls do nothing.
public enum ThreadSanitizer {
    private typealias Annotation = @convention(c) (UnsafeRawPointer?) -> Void
    private static let annotations: (acquire: Annotation, release: Annotation)? = {
        let program = dlopen(nil, RTLD_NOW)
        guard let acquire = dlsym(program, "__tsan_acquire"), let release = dlsym(program, "__tsan_release") else { return nil }
        return (unsafeBitCast(acquire, to: Annotation.self), unsafeBitCast(release, to: Annotation.self))
    }()

    /// Everything done before the last ``release(_:)`` of `address` happened before what follows.
    public static func acquire(_ address: UnsafeRawPointer) { annotations?.acquire(address) }

    /// Ends this thread's turn with what `address` stands for.
    public static func release(_ address: UnsafeRawPointer) { annotations?.release(address) }
}

extension Mutex {
    /// `withLock`, with the critical section made visible to ThreadSanitizer (see ``ThreadSanitizer``):
    /// what one body did happened, for the sanitizer too, before the next body on any thread runs.
    public borrowing func withCheckedLock<Result, E: Error>(_ body: (inout sending Value) throws(E) -> sending Result) throws(E) -> sending Result {
        // The lock's own address names it to the sanitizer (taken without touching the guarded value).
        let token = withUnsafePointer(to: self) { UnsafeRawPointer($0) }
        return try withLock { (value: inout sending Value) throws(E) -> sending Result in
            ThreadSanitizer.acquire(token)
            defer { ThreadSanitizer.release(token) }
            return try body(&value)
        }
    }
}
