#if canImport(Glibc)
import Glibc
#endif

/// Tells ThreadSanitizer about synchronisation it cannot see. On Linux `Synchronization.Mutex` locks with
/// futex calls inside the uninstrumented standard library, so an object handed from one thread to another
/// under a Mutex (a simulator swapped in by a test, used by a bench slot) looks like a data race although
/// the lock orders every access. A type that guards memory outside the Mutex's own value marks the
/// critical section with ``acquire(_:)`` after locking and ``release(_:)`` before unlocking.
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

    /// What `object`'s lock protects is now this thread's: everything done before the last ``release(_:)``
    /// of the same object happened before.
    public static func acquire(_ object: AnyObject) {
        annotations?.acquire(UnsafeRawPointer(Unmanaged.passUnretained(object).toOpaque()))
    }

    /// Ends this thread's turn with what `object`'s lock protects.
    public static func release(_ object: AnyObject) {
        annotations?.release(UnsafeRawPointer(Unmanaged.passUnretained(object).toOpaque()))
    }
}
