#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers

/// Calls back when a file in one directory is written, created, renamed into place, deleted
/// or has its attributes changed (inotify), so a state file's edit is seen at once instead of
/// at the next poll.
///
/// The directory is watched, not the file: editors save by renaming a new file over the old
/// one and Kubernetes swaps ConfigMap contents by renaming a symlink, and both replace the
/// inode a file watch would be on. Partial writes (`IN_MODIFY`) are ignored; the writer's
/// close is the signal. A dedicated thread blocks in `poll` so no event loop is held.
package final class DirectoryWatcher: Sendable {
    private let descriptor: Int32
    private let stopped = NIOLockedValueBox(false)
    private let thread = NIOLockedValueBox<pthread_t?>(nil)

    /// Starts watching `directory`; nil when inotify is unavailable (the caller then polls).
    package init?(directory: String, onChange: @escaping @Sendable () -> Void) {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF)
        guard inotify_add_watch(fd, directory, mask) >= 0 else {
            close(fd)
            return nil
        }
        descriptor = fd
        let stopped = self.stopped
        let box = Unmanaged.passRetained(Box { Self.watch(fd, stopped: stopped, onChange: onChange) })
        var handle = pthread_t()
        guard pthread_create(&handle, nil, { raw in
            guard let raw else { return nil }
            let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
            box.body()
            return nil
        }, box.toOpaque()) == 0 else {
            box.release()
            close(fd)
            return nil
        }
        thread.withLockedValue { $0 = handle }
    }

    /// Stops the thread (within its poll timeout) and closes the descriptor.
    package func stop() {
        let wasStopped = stopped.withLockedValue { stopped -> Bool in
            defer { stopped = true }
            return stopped
        }
        guard !wasStopped, let handle = thread.withLockedValue({ $0 }) else { return }
        pthread_join(handle, nil)
        close(descriptor)
    }

    deinit {
        stop()
    }

    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    private static func watch(_ fd: Int32, stopped: NIOLockedValueBox<Bool>, onChange: @Sendable () -> Void) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !stopped.withLockedValue({ $0 }) {
            var request = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            // A bounded wait, so `stop` is noticed without closing the descriptor under us.
            guard poll(&request, 1, 200) > 0 else { continue }
            var sawEvent = false
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                guard count > 0 else { break }
                sawEvent = true
            }
            if sawEvent { onChange() }
        }
    }
}
