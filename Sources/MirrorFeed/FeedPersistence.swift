import Logging
import NIOConcurrencyHelpers
import NIOPosix
import MirrorModel

/// Keeps the client's applied state on disk, at most every `interval` while changes stream
/// in, and always on disconnect and exit.
///
/// Saves run on a thread pool, off the stream: encoding and fsyncing a large state takes
/// long (about 3 s at 100k services), and deltas must keep being applied meanwhile. One save
/// at a time; a save that falls due while one runs waits for the next interval. Repeated
/// failures are logged once until a save succeeds again.
final class FeedPersistence: Sendable {
    let file: FeedStateFile?
    let interval: Duration
    private let logger: Logger
    private let pool: NIOThreadPool

    private struct State {
        var saved: (revision: UInt64, epoch: String?)?
        var lastSave: ContinuousClock.Instant?
        var writing = false
        var failing = false
        /// Waiting for the running save to end.
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = NIOLockedValueBox(State())

    init(file: FeedStateFile?, interval: Duration, logger: Logger, pool: NIOThreadPool = .singleton) {
        self.file = file
        self.interval = interval
        self.logger = logger
        self.pool = pool
    }

    /// The persisted state, if any (at start, before anything streams).
    func restore() -> FeedStateFile.Contents? {
        guard let file else { return nil }
        do {
            let contents = try file.load()
            if let contents { state.withLockedValue { $0.saved = (contents.store.revision, contents.epoch) } }
            return contents
        } catch {
            logger.error("ignoring the persisted feed state", metadata: ["path": "\(file.path)", "error": "\(error)"])
            return nil
        }
    }

    /// Starts a background save of `applier`'s state when one is due and none is running;
    /// returns at once.
    func persistIfDue(_ applier: FeedApplier) {
        guard let file, let epoch = applier.epoch else { return }
        let store = applier.store
        let now = ContinuousClock.now
        let start = state.withLockedValue { s -> Bool in
            guard !s.writing, !Self.isSaved(store.revision, epoch, in: s) else { return false }
            if let lastSave = s.lastSave, now - lastSave < interval { return false }
            s.writing = true
            return true
        }
        guard start else { return }
        pool.submit { [self] _ in
            // Runs also when the pool is shutting down: the save is still worth making.
            self.save(store, epoch: epoch, to: file)
            let waiters = self.state.withLockedValue { s -> [CheckedContinuation<Void, Never>] in
                s.writing = false
                defer { s.waiters = [] }
                return s.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
    }

    /// Saves `applier`'s state now unless it is already saved, after any running save.
    func persistNow(_ applier: FeedApplier) async {
        guard let file, let epoch = applier.epoch else { return }
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let idle = state.withLockedValue { s -> Bool in
                if s.writing { s.waiters.append(waiter) }
                return !s.writing
            }
            if idle { waiter.resume() }
        }
        guard !state.withLockedValue({ Self.isSaved(applier.store.revision, epoch, in: $0) }) else { return }
        let store = applier.store
        // Not `runIfActive`: it drops the work when the task is cancelled, and the client
        // calls this on exit from a cancelled task, the one save that must not be lost.
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            pool.submit { [self] _ in
                self.save(store, epoch: epoch, to: file)
                done.resume()
            }
        }
    }

    private static func isSaved(_ revision: UInt64, _ epoch: String, in state: State) -> Bool {
        guard let saved = state.saved else { return false }
        return saved.revision == revision && saved.epoch == epoch
    }

    private func save(_ store: MirrorStore, epoch: String, to file: FeedStateFile) {
        let result = Result { try file.save(store, epoch: epoch) }
        let now = ContinuousClock.now
        let warn = state.withLockedValue { s -> Bool in
            s.lastSave = now
            switch result {
            case .success:
                s.saved = (store.revision, epoch)
                s.failing = false
                return false
            case .failure:
                defer { s.failing = true }
                return !s.failing
            }
        }
        if warn, case .failure(let error) = result {
            logger.warning("could not persist the feed state", metadata: ["error": "\(error)"])
        }
    }
}
